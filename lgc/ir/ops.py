"""Gate semantics: an op code 0..15 IS the gate's truth table, in difflogic's order.

``f(a, b) = (op >> (3 - 2*a - b)) & 1``. Everything in lgc that needs to know what a gate
computes reads the tables in this module, so the semantics exist in exactly one place.
All tables are tiny numpy arrays indexed by op code, so whole gate arrays are handled at once.
"""
from __future__ import annotations

import numpy as np

NUM_OPS = 16

OP_NAMES: tuple[str, ...] = (
    "FALSE", "AND", "A_AND_NOT_B", "A", "NOT_A_AND_B", "B", "XOR", "OR",
    "NOR", "XNOR", "NOT_B", "A_OR_NOT_B", "NOT_A", "NOT_A_OR_B", "NAND", "TRUE",
)
OP_BY_NAME: dict[str, int] = {name: i for i, name in enumerate(OP_NAMES)}

FALSE, AND, A_AND_NOT_B, A, NOT_A_AND_B, B, XOR, OR = range(8)
NOR, XNOR, NOT_B, A_OR_NOT_B, NOT_A, NOT_A_OR_B, NAND, TRUE = range(8, 16)

#: TRUTH[op, a, b] -> output bit.
TRUTH = np.array(
    [[[(op >> (3 - 2 * a - b)) & 1 for b in (0, 1)] for a in (0, 1)] for op in range(NUM_OPS)],
    dtype=np.uint8,
)


def truth_table_code(table: np.ndarray) -> np.ndarray:
    """Op codes (uint8 [G]) of truth tables given as 0/1 integer arrays [G, a, b]: the inverse of ``TRUTH``."""
    table = np.asarray(table, dtype=np.uint8)
    return (table[:, 0, 0] << 3 | table[:, 0, 1] << 2 | table[:, 1, 0] << 1 | table[:, 1, 1]).astype(np.uint8)


_code = truth_table_code

#: Algebraic normal form over GF(2): f = c0 ^ c1&a ^ c2&b ^ c3&a&b. ANF[op] = (c0, c1, c2, c3).
ANF = np.stack(
    [
        TRUTH[:, 0, 0],
        TRUTH[:, 0, 0] ^ TRUTH[:, 1, 0],
        TRUTH[:, 0, 0] ^ TRUTH[:, 0, 1],
        TRUTH[:, 0, 0] ^ TRUTH[:, 0, 1] ^ TRUTH[:, 1, 0] ^ TRUTH[:, 1, 1],
    ],
    axis=1,
).astype(np.uint8)

#: Real-valued relaxation coefficients (design: c0 + c1 p + c2 q + c3 pq) per op.
RELAX = np.stack(
    [
        TRUTH[:, 0, 0],
        TRUTH[:, 1, 0].astype(np.int8) - TRUTH[:, 0, 0],
        TRUTH[:, 0, 1].astype(np.int8) - TRUTH[:, 0, 0],
        TRUTH[:, 0, 0].astype(np.int8) - TRUTH[:, 0, 1] - TRUTH[:, 1, 0] + TRUTH[:, 1, 1],
    ],
    axis=1,
).astype(np.float64)

#: True where the gate's output does not depend on operand a (resp. b): such an operand is not a use.
IGNORES_A = (TRUTH[:, 0, :] == TRUTH[:, 1, :]).all(axis=1)
IGNORES_B = (TRUTH[:, :, 0] == TRUTH[:, :, 1]).all(axis=1)
IS_CONSTANT = IGNORES_A & IGNORES_B

#: op with operands swapped: f'(a, b) = f(b, a).
SWAP = _code(TRUTH.transpose(0, 2, 1))
#: op with operand a negated: f'(a, b) = f(~a, b); likewise for b, and for the output.
NEGATE_A = _code(TRUTH[:, ::-1, :])
NEGATE_B = _code(TRUTH[:, :, ::-1])
NEGATE_OUT = (15 - np.arange(NUM_OPS)).astype(np.uint8)
#: op of the one-input function a gate computes when both operands are the same node
#: (as a function of a: one of FALSE, A, NOT_A, TRUE).
SAME_OPERAND = np.array(
    [[FALSE, A], [NOT_A, TRUE]], dtype=np.uint8
)[TRUTH[:, 0, 0], TRUTH[:, 1, 1]]


def op_code(op: int | str) -> int:
    """An op code from a code or a name such as ``"XOR"`` (case-insensitive)."""
    if isinstance(op, str):
        try:
            return OP_BY_NAME[op.upper()]
        except KeyError:
            raise ValueError(f"unknown gate {op!r}; known: {', '.join(OP_NAMES)}") from None
    code = int(op)
    if not 0 <= code < NUM_OPS:
        raise ValueError(f"op code {code} outside 0..15")
    return code


def apply_words(op: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Evaluate gates on bit-sliced words: ``op`` is uint8[G], ``a`` and ``b`` uint64[G, W].

    Uses the algebraic normal form, so one expression serves all 16 ops with no branch per op.
    """
    coeff = ANF[op].astype(np.uint64) * np.uint64(0xFFFFFFFFFFFFFFFF)  # 0 or all-ones masks
    c0, c1, c2, c3 = (coeff[:, i, None] for i in range(4))
    return c0 ^ (c1 & a) ^ (c2 & b) ^ (c3 & a & b)
