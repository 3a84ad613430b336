"""What every executable backend shares: the CompiledNet contract, input checks and readout.

A backend only supplies ``_run_words(words: uint64[num_inputs, W]) -> uint64[num_outputs, W]``
(or overrides ``__call__`` for a faster fused path); checking, packing, the group-sum readout,
``predict`` and ``save`` live here once. Native CPU targets derive from :class:`FastNet`, whose
kernels pack bool rows and read out scores themselves; ``__call__`` there only checks the input
and splits the batch into per-thread chunks (the native call releases the GIL).
"""
from __future__ import annotations

import os
from typing import Any

import numpy as np

from ..ir import Circuit, PackedBits, packed_input, unpack_bits
from ..ir.simulate import group_sum_words


class CompiledNet:
    """A circuit built for one target (``lgc.compile``'s result); every backend's executable.

    - ``net(x)``: ``x`` is a batch, whatever the target: bool ``[N, num_inputs]`` (numpy or torch;
      any nonzero byte is True, so ``.view(bool)`` arrays holding 0xFF mean what numpy says),
      numeric 0/1 ``[N, num_inputs]`` without an input encoder, :class:`lgc.ir.PackedBits`, or raw
      features ``[N, ...]`` when the circuit has an input encoder. Returns int32 class scores
      ``[N, k]`` (group popcounts: a PyTorch ``GroupSum`` gives ``scores / tau``) with a head, else
      uint8 output bits ``[N, O]``. ``N == 0`` gives an empty result of the same dtype. One sample
      without its batch axis (``x_test[0]``, shape ``[num_inputs]``) is refused with a ValueError
      that says to pass ``x[None]``: rows and samples are never guessed. Any other shape or dtype,
      NaN, or values other than 0/1 without an encoder are a ValueError saying what was expected
      (:func:`lgc.ir.packed.batch_layout` checks it, once for every target and the simulator).
    - ``net.predict(x)``: int64 ``[N]`` argmax class (lowest index wins a tie).
    - ``net.save(path)``: a ``.lgc`` file naming the target; ``lgc.load`` rebuilds it (for the best
      available target, with a warning, where the saved one is not available).
    - ``net.circuit``: the (optimised) :class:`lgc.ir.Circuit` it runs; ``net.target``, ``net.threads``.
    Results equal ``lgc.ir.simulate(net.circuit, x)`` bit for bit on every target.
    """

    target: str = "?"

    def __init__(self, circuit: Circuit, *, threads: int | None = None):
        self.circuit = circuit.validate()
        self.threads = threads

    def _run_words(self, words: np.ndarray) -> np.ndarray:  # pragma: no cover - every backend overrides
        raise NotImplementedError

    def __call__(self, x: Any) -> np.ndarray:
        packed = packed_input(self.circuit, x)
        out = self._run_words(np.ascontiguousarray(packed.words))
        if packed.n % 64 and out.size:
            out[:, -1] &= np.uint64((1 << (packed.n % 64)) - 1)
        if self.circuit.head is not None:
            return group_sum_words(out, packed.n, self.circuit.head.k)
        return unpack_bits(PackedBits(out, packed.n))

    def predict(self, x: Any) -> np.ndarray:
        """int64[N] class index (argmax, the lowest index wins a tie)."""
        if self.circuit.head is None:
            raise ValueError("predict needs a circuit with a group-sum head")
        return np.argmax(self(x), axis=1).astype(np.int64)

    def save(self, path: str | os.PathLike) -> None:
        """Write a ``.lgc`` file holding the circuit and this target; ``lgc.load`` rebuilds it."""
        from ..ir.serialize import save
        save(self.circuit, path, meta={"compiled_target": self.target})

    def __repr__(self) -> str:
        return f"<CompiledNet target={self.target!r} {self.circuit!r}>"

    def _repr_html_(self) -> str:
        """The target and threads, then the circuit's statistics table (as ``Circuit._repr_html_``)."""
        import html
        threads = "backend default" if self.threads is None else str(self.threads)
        return (f"<p><b>CompiledNet</b> target <code>{html.escape(str(self.target))}</code>, threads "
                f"{html.escape(threads)}</p>" + self.circuit._repr_html_())


# ---- shared by the native CPU targets (c, cpu-avx2, cpu-avx512, llvm) ----

def cpu_flags() -> frozenset[str]:
    """The host CPU's feature flags from /proc/cpuinfo (empty where that file does not exist)."""
    return _cpu_flags()


def _read_cpu_flags() -> frozenset[str]:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    return frozenset(line.split(":", 1)[1].split())
    except OSError:
        pass
    return frozenset()


_FLAGS: list[frozenset[str]] = []


def _cpu_flags() -> frozenset[str]:
    if not _FLAGS:
        _FLAGS.append(_read_cpu_flags())
    return _FLAGS[0]


def default_threads() -> int:
    """Cores this process may run on."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


_POOLS: dict[int, Any] = {}


def _pool(threads: int):
    from concurrent.futures import ThreadPoolExecutor
    if threads not in _POOLS:
        _POOLS[threads] = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="lgc")
    return _POOLS[threads]


class FastNet(CompiledNet):
    """A CompiledNet whose native code packs bool rows and reads out scores itself.

    Subclasses set ``tile`` (samples per kernel step, a multiple of 64) and implement
    ``_run_chunk(x, packed, wstride, n, scores, bits)`` for ``n`` rows starting at the given
    array views: ``x`` uint8 0/1 rows [n, num_inputs] or None, ``packed`` uint64 words (row
    stride ``wstride``) or None; it fills ``scores`` int32 [n, k] or ``bits`` uint8 [n, O].
    ``__call__`` checks the input (lgc.ir.input_bits), splits the batch into per-thread chunks
    of whole tiles and runs them on a thread pool (the native call releases the GIL).
    ``threads=None`` uses every core this process may run on.
    """

    tile: int = 64

    def _run_chunk(self, x, packed, wstride, n, scores, bits) -> None:  # pragma: no cover - overridden
        raise NotImplementedError

    def __call__(self, x: Any) -> np.ndarray:
        from ..ir.packed import input_bits
        c = self.circuit
        data = input_bits(c, x)
        if isinstance(data, PackedBits):
            n, rows, words = data.n, None, data.words
            if words.strides[1] != 8:
                words = np.ascontiguousarray(words)
        else:
            n = data.shape[0]
            rows = np.ascontiguousarray(data).view(np.uint8) if data.dtype == bool \
                else np.ascontiguousarray(data, dtype=np.uint8)
            words = None
        k = c.head.k if c.head is not None else 0
        scores = np.empty((n, k), dtype=np.int32) if k else None
        bits = None if k else np.empty((n, c.num_outputs), dtype=np.uint8)
        result = scores if k else bits
        if n == 0 or result.size == 0:
            return np.zeros(result.shape, dtype=result.dtype)
        threads = self.threads or default_threads()
        per = -(-n // threads)
        per = max(self.tile, -(-per // self.tile) * self.tile)
        spans = [(lo, min(n, lo + per)) for lo in range(0, n, per)]
        wstride = words.strides[0] // 8 if words is not None else 0

        def run(span: tuple[int, int]) -> None:
            lo, hi = span
            self._run_chunk(rows[lo:hi] if rows is not None else None,
                            words[:, lo // 64:] if words is not None else None, wstride, hi - lo,
                            scores[lo:hi] if k else None, bits[lo:hi] if not k else None)

        if len(spans) == 1:
            run(spans[0])
        else:
            list(_pool(len(spans)).map(run, spans))
        return result
