"""Fuzzing every file format lgc reads (issue 16, "Done when"): a few hundred mutations each (bit
flips, truncations, splices, number changes) of a valid file, and per mutation:

- no crash: the only exceptions are FormatError/CircuitError;
- no hang: each load finishes within an alarm (10 s);
- memory bounded: the load's tracemalloc peak stays under a fixed bound (the files are ~1 KB);
- an accepted mutation is the original circuit where the format can protect it (``.lgc``: a digest
  over every byte; ``.pt``: CRC-32 per record plus shape/range checks), and for the formats with no
  checksum (text, BLIF, AIGER ascii and binary) a valid circuit that ``validate()`` accepts, that lgc
  can store and simulate: a changed digit there is a different but well-formed netlist, which no
  reader can tell from an intended one.

Examples per format: 100 (dev), 300 (ci), 2000 (HYPOTHESIS_PROFILE=thorough)."""
from __future__ import annotations

import contextlib
import os
import re
import signal
import tracemalloc
import warnings

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import lgc
from lgc.ir import Circuit, CircuitError, GroupSumHead, InputEncoder, random_layered_circuit, serialize, simulate

PROFILE = os.environ.get("HYPOTHESIS_PROFILE", "ci" if os.environ.get("CI") else "dev")
EXAMPLES = {"dev": 100, "ci": 300, "thorough": 2000}.get(PROFILE, 300)
PEAK_BOUND = 32 << 20
FUZZ = settings(max_examples=EXAMPLES, deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
NUMBERS = [0, 1, 2, 3, 9, 15, 16, 255, 256, 65535, 2**31 - 1, 2**31, 2**32, 2**63, 10**20, -1, -2**31]


def _circuit() -> Circuit:
    c = random_layered_circuit(10, [14, 8], num_classes=2, seed=11)
    enc = InputEncoder(np.arange(10) % 5, np.linspace(-1, 1, 10), 5)
    negated = np.arange(c.num_outputs) % 3 == 1   # output literals: each format's negation syntax is fuzzed too
    return c.replace(input_encoder=enc, meta={"name": "fuzz"}, output_negated=negated)


@st.composite
def mutated(draw, data: bytes) -> bytes:
    """1-3 mutations of ``data``."""
    out = bytearray(data)
    for _ in range(draw(st.integers(1, 3))):
        kind = draw(st.sampled_from(["flip", "flip", "truncate", "splice", "number"]))
        n = len(out)
        if n == 0:
            break
        if kind == "flip":
            bit = draw(st.integers(0, 8 * n - 1))
            out[bit // 8] ^= 1 << (bit % 8)
        elif kind == "truncate":
            del out[draw(st.integers(0, n - 1)):]
        elif kind == "splice":  # copy a range elsewhere, replacing or inserting
            i = draw(st.integers(0, n - 1))
            j = draw(st.integers(i, min(n, i + 64)))
            k = draw(st.integers(0, n))
            piece = bytes(out[i:j])
            if draw(st.booleans()):
                out[k:k + len(piece)] = piece
            else:
                out[k:k] = piece
        else:  # change a decimal number
            runs = [m.span() for m in re.finditer(rb"-?\d+", bytes(out))]
            if runs:
                i, j = draw(st.sampled_from(runs))
                out[i:j] = str(draw(st.sampled_from(NUMBERS))).encode()
    return bytes(out)


@contextlib.contextmanager
def _bounded():
    """Fail on a hang (10 s alarm) or a peak beyond PEAK_BOUND while the block runs."""
    def hang(signum, frame):
        raise AssertionError("a load took more than 10 s (hang)")
    old = signal.signal(signal.SIGALRM, hang)
    signal.alarm(10)
    tracemalloc.start()
    try:
        yield
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)
    assert peak < PEAK_BOUND, f"a load allocated {peak} bytes"


def _load(path):
    with warnings.catch_warnings(), _bounded():
        warnings.simplefilter("ignore")
        try:
            return lgc.load(path)
        except CircuitError:  # FormatError is one; anything else fails the test
            return None


def _assert_valid(c: Circuit) -> None:
    """What a format without a checksum can promise: a well-formed circuit lgc can store and run."""
    c.validate()
    assert serialize.loads(serialize.dumps(c)) == c
    x = np.random.default_rng(0).integers(0, 2, (70, c.num_inputs)).astype(bool)
    assert simulate(c, x, head=False).shape == (70, c.num_outputs)


def _fuzz_format(tmp_path_factory, suffix: str, exact: bool):
    original = _circuit()
    d = tmp_path_factory.mktemp("fuzz")
    good_path = d / f"good{suffix}"
    lgc.export(original, good_path)
    good = good_path.read_bytes()
    expected = lgc.load(good_path)
    path = d / f"mutant{suffix}"

    @FUZZ
    @given(data=mutated(good))
    def run(data):
        path.write_bytes(data)
        loaded = _load(path)
        if loaded is None:
            return
        if exact:
            assert loaded == expected and loaded.meta == expected.meta, "damage loaded as a different circuit"
        else:
            _assert_valid(loaded)

    run()


def test_fuzz_lgc(tmp_path_factory):
    _fuzz_format(tmp_path_factory, ".lgc", exact=True)


def test_fuzz_text(tmp_path_factory):
    _fuzz_format(tmp_path_factory, ".lgct", exact=False)


def test_fuzz_blif(tmp_path_factory):
    _fuzz_format(tmp_path_factory, ".blif", exact=False)


def test_fuzz_aiger_ascii(tmp_path_factory):
    _fuzz_format(tmp_path_factory, ".aag", exact=False)


def test_fuzz_aiger_binary(tmp_path_factory):
    _fuzz_format(tmp_path_factory, ".aig", exact=False)


def test_fuzz_checkpoint(tmp_path_factory):
    torch = pytest.importorskip("torch")
    from lgc.frontend import GroupSum, LogicLayer, load_checkpoint, save_checkpoint
    from lgc.ir.formats import FormatError
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Flatten(), LogicLayer(8, 12, implementation="python"),
                                LogicLayer(12, 6, implementation="python"), GroupSum(2, 1.0))
    d = tmp_path_factory.mktemp("fuzz")
    save_checkpoint(model, d / "good.pt")
    good = (d / "good.pt").read_bytes()
    expected = lgc.lower(load_checkpoint(d / "good.pt"))
    path = d / "mutant.pt"

    @settings(FUZZ, max_examples=max(EXAMPLES // 2, 50))  # torch.load per example: ~4x the others' cost
    @given(data=mutated(good))
    def run(data):
        path.write_bytes(data)
        with warnings.catch_warnings(), _bounded():
            warnings.simplefilter("ignore")
            try:
                loaded = lgc.lower(load_checkpoint(path))
            except FormatError:
                return
        assert loaded == expected, "damage loaded as a different circuit"

    run()
