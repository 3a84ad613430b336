"""difflogic's names, so a difflogic script runs by changing one import line.

``from lgc.compat.difflogic import LogicLayer, GroupSum, PackBitsTensor, CompiledLogicNet``
instead of ``from difflogic import ...``. ``LogicLayer`` and ``GroupSum`` are lgc's training
modules (difflogic's arguments, ``num_neurons``, ``num_weights``, assignable ``indices``),
``PackBitsTensor`` runs a model on packed bits (:mod:`lgc.compat.packbits`), and
``CompiledLogicNet`` has difflogic's constructor, ``compile``, ``load``, ``get_c_code`` and
``forward``: the network is lowered to an lgc Circuit, optimised by lgc's passes and run in this
process by the fastest CPU target (a prebuilt table-driven kernel, so compiling takes a fraction
of a second instead of gcc minutes); ``compile(save_lib_path="x.so")`` also writes a real shared
library (the emitted C of :mod:`lgc.backends.c_source`, built by ``cpu_compiler``) with
difflogic's ``apply_logic_gate_net`` symbol and lgc's ABI, documented in ``x.h`` beside it.
``forward`` returns int32 class counts as a torch ``IntTensor`` whenever torch is importable (a
numpy array otherwise). torch is imported only when needed (``LogicLayer`` and ``GroupSum`` need it).
"""
from __future__ import annotations

import ctypes
import os
import pathlib
from typing import Any

import numpy as np

from .._build import BuildError, find_tool
from ..ir import Circuit

_NUM_BITS = (8, 16, 32, 64)
#: symbol prefix of the shared library's lgc ABI (``logic_gate_net_scores``, ...; see its header)
LIB_PREFIX = "logic_gate_net"
_ELF_MAGIC = b"\x7fELF"


def __getattr__(name: str) -> Any:
    # the torch modules load lazily, so CompiledLogicNet works without PyTorch
    if name in ("LogicLayer", "GroupSum"):
        from .. import frontend
        return getattr(frontend, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _to_circuit(model: Any) -> Circuit:
    if isinstance(model, Circuit):
        return model.validate()
    from ..frontend import from_difflogic, lower  # torch is needed for a torch model only
    return lower(from_difflogic(model))


def _as_result(out: np.ndarray) -> Any:
    try:
        import torch
    except ImportError:
        return out
    return torch.from_numpy(out)


class SharedLibraryNet:
    """A network in a shared library written by ``CompiledLogicNet.compile(save_lib_path=...)``,
    called through ctypes: ``net(x)`` -> int32 class counts [N, k] for bool (or 0/1) [N, num_inputs]."""

    def __init__(self, path: str | os.PathLike):
        self.path = os.fspath(path)
        self._lib = ctypes.CDLL(os.path.abspath(self.path))
        try:
            dims = (ctypes.c_int64 * 4).in_dll(self._lib, f"{LIB_PREFIX}_dims")
            self._scores = getattr(self._lib, f"{LIB_PREFIX}_scores")
        except (AttributeError, ValueError):
            raise ValueError(f"{self.path!r} is not a library written by lgc's CompiledLogicNet "
                             f"(no {LIB_PREFIX}_dims / {LIB_PREFIX}_scores symbols)") from None
        self.num_inputs, self.num_outputs, self.num_classes, self.num_features = (int(d) for d in dims)
        if self.num_classes < 1:
            raise ValueError(f"{self.path!r} holds a network without a group-sum head")
        self._scores.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_void_p, ctypes.c_void_p]
        self._scores.restype = ctypes.c_int
        self.target = "shared-library"

    def __call__(self, x: Any) -> np.ndarray:
        if hasattr(x, "detach") and hasattr(x, "cpu"):
            x = x.detach().cpu().numpy()
        x = np.asarray(x)
        if x.ndim != 2 or x.shape[1] != self.num_inputs or x.dtype.kind not in "biuf":
            raise ValueError(f"input must be bool [N, {self.num_inputs}], got {x.dtype} {list(x.shape)}")
        if x.dtype != bool and x.size and not ((x == 0) | (x == 1)).all():
            raise ValueError("input bits must be 0 or 1")
        rows = np.ascontiguousarray(x).view(np.uint8) if x.dtype == bool else np.ascontiguousarray(x, dtype=np.uint8)
        out = np.empty((len(rows), self.num_classes), dtype=np.int32)
        if self._scores(rows.ctypes.data, len(rows), out.ctypes.data, None) != 0:
            raise MemoryError(f"{self.path}: the network could not allocate its working set")
        return out


class DifflogicLibraryNet:
    """A shared library difflogic itself compiled: its ``apply_logic_gate_net(inp, out, len)``
    runs ``len`` blocks of ``num_bits`` samples of bool rows, so batches are padded to whole blocks
    (as difflogic's ``forward`` does); the input width is the batch's."""

    def __init__(self, path: str | os.PathLike, num_classes: int, num_bits: int):
        self.path, self.num_classes, self.num_bits = os.fspath(path), int(num_classes), int(num_bits)
        lib = ctypes.CDLL(os.path.abspath(self.path))
        try:
            self._fn = lib.apply_logic_gate_net
        except AttributeError:
            raise ValueError(f"{self.path!r} has neither lgc's nor difflogic's symbols "
                             f"({LIB_PREFIX}_scores, apply_logic_gate_net)") from None
        self._fn.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_size_t]
        self._fn.restype = None
        self._lib = lib
        self.target = "difflogic shared library"

    def __call__(self, x: Any) -> np.ndarray:
        if hasattr(x, "detach") and hasattr(x, "cpu"):
            x = x.detach().cpu().numpy()
        x = np.asarray(x)
        if x.ndim != 2 or x.dtype.kind not in "biuf":
            raise ValueError(f"input must be bool [N, num_inputs], got {x.dtype} {list(x.shape)}")
        blocks = -(-len(x) // self.num_bits)
        padded = np.zeros((blocks * self.num_bits, x.shape[1]), dtype=bool)
        padded[:len(x)] = x != 0
        out = np.zeros((len(padded), self.num_classes), dtype=np.int32)
        self._fn(padded.ctypes.data, out.ctypes.data, blocks)
        return out[:len(x)]


class CompiledLogicNet:
    """difflogic's ``CompiledLogicNet``: ``CompiledLogicNet(model, num_bits=64, cpu_compiler='gcc')``,
    then ``.compile()`` and ``.forward(x)`` (or ``net(x)``) -> int32 class counts [N, k].

    ``model`` is an lgc or difflogic ``nn.Sequential`` (LogicLayers + GroupSum), or an lgc
    Circuit. ``num_bits`` (8, 16, 32, 64) is the block size of the shared library's
    ``apply_logic_gate_net`` (``len`` blocks of ``num_bits`` samples, as in difflogic); lgc itself
    packs 64 samples per word whatever it is. ``cpu_compiler`` names the C compiler for the C
    targets and the shared library; ``device`` must be ``'cpu'``.
    """

    def __init__(self, model: Any = None, device: str = "cpu", num_bits: int = 64, cpu_compiler: str = "gcc",
                 verbose: bool = False, *, target: str = "cpu", threads: int | None = None):
        if device != "cpu":
            raise ValueError(f"CompiledLogicNet runs on the CPU (device='cpu'); got device={device!r}; "
                             f"use lgc.compile(model, target='cuda') for the GPU")
        if num_bits not in _NUM_BITS:
            raise ValueError(f"num_bits must be one of {_NUM_BITS}, got {num_bits!r}")
        self.model = model
        self.circuit = _to_circuit(model) if model is not None else None
        self.num_bits = num_bits
        self.cpu_compiler = cpu_compiler
        self.verbose = verbose
        self.target = target
        self.threads = threads
        self.net = None
        self.optimized = None    # the circuit after compile()'s passes

    @property
    def num_classes(self) -> int | None:
        if self.circuit is None and isinstance(self.net, SharedLibraryNet):
            return self.net.num_classes
        head = self.circuit.head if self.circuit is not None else None
        return head.k if head is not None else None

    def _compiler(self) -> str | None:
        """``cpu_compiler`` as a path (None: lgc's default, ``$LGC_CC`` or gcc)."""
        if self.cpu_compiler in (None, "gcc"):
            return None
        path = find_tool(self.cpu_compiler)
        if path is None:
            raise BuildError(f"cpu_compiler {self.cpu_compiler!r} not found on PATH")
        return path

    def compile(self, opt_level: int = 1, save_lib_path: str | os.PathLike | None = None,
                verbose: bool = False) -> "CompiledLogicNet":
        """Optimise at lgc pass level ``opt_level`` (difflogic's default 1: dead gates, constants,
        pass-throughs; 2 adds NOT absorption, hashing and rewriting: ``lgc.optimize``) and build for this process.
        With ``save_lib_path``, also write a shared library of the network there (gcc -O2 of
        :meth:`get_c_code`; symbols in the header written beside it, same stem, ``.h``) that
        :meth:`load` and any C or ctypes program can use. Raises BuildError when the compiler fails."""
        if self.circuit is None:
            raise ValueError("CompiledLogicNet has no model to compile")
        if self.model is not None and not isinstance(self.model, Circuit):
            self.circuit = _to_circuit(self.model)  # the model as it is now, as difflogic reads it at compile()
        if self.circuit.head is None:
            raise ValueError("CompiledLogicNet needs a model that ends in GroupSum (class counts)")
        import time
        from .. import api
        t0 = time.perf_counter()
        cc = self._compiler()
        old = os.environ.get("LGC_CC")
        if cc is not None:
            os.environ["LGC_CC"] = cc
        try:
            self.net = api.compile(self.circuit, target=self.target, opt_level=opt_level, threads=self.threads)
        finally:
            if cc is not None:
                if old is None:
                    os.environ.pop("LGC_CC", None)
                else:
                    os.environ["LGC_CC"] = old
        self.optimized = self.net.circuit
        if verbose or self.verbose:
            print(f"lgc: {self.circuit.num_gates} gates -> {self.optimized.num_gates} after O{opt_level}, "
                  f"target {self.net.target}, {time.perf_counter() - t0:.2f} s")
        if save_lib_path is not None:
            from ..backends import c_source
            t1 = time.perf_counter()
            src = c_source.build_shared_library(self.optimized, save_lib_path, compiler=cc, prefix=LIB_PREFIX,
                                                difflogic_num_bits=self.num_bits)
            pathlib.Path(os.fspath(save_lib_path)).with_suffix(".h").write_text(src.h)
            if verbose or self.verbose:
                print(f"lgc: wrote the shared library {os.fspath(save_lib_path)} in {time.perf_counter() - t1:.2f} s")
        return self

    def get_c_code(self) -> str:
        """The network as standalone C99 (lgc's kernel and the circuit's tables; the ABI of
        :mod:`lgc.backends.c_source` with prefix ``logic_gate_net``, plus difflogic's
        ``apply_logic_gate_net``): the source :meth:`compile` builds into its shared library."""
        from ..backends import c_source
        circuit = self.optimized if self.optimized is not None else self.circuit
        if circuit is None:
            raise ValueError("CompiledLogicNet has no model (a loaded library has no C source)")
        return c_source.emit(circuit, LIB_PREFIX, difflogic_num_bits=self.num_bits).c

    @staticmethod
    def load(save_lib_path: str | os.PathLike, num_classes: int | None = None, num_bits: int = 64,
             target: str | None = None) -> "CompiledLogicNet":
        """Load a shared library written by ``compile(save_lib_path=...)`` (or a ``.lgc`` file).
        ``num_classes``, when given, must match the network's. Raises ValueError otherwise."""
        with open(save_lib_path, "rb") as f:
            is_elf = f.read(4) == _ELF_MAGIC
        if is_elf:
            try:
                lib = SharedLibraryNet(save_lib_path)
            except ValueError:
                if num_classes is None:
                    raise
                lib = DifflogicLibraryNet(save_lib_path, num_classes, num_bits)   # a library difflogic built
            k = lib.num_classes
            out = CompiledLogicNet(None, num_bits=num_bits)
            out.net = lib
        else:
            from .. import api
            loaded = api.load(save_lib_path, target=target)  # target=None: the saved target, or the best here
            circuit = loaded if isinstance(loaded, Circuit) else loaded.circuit
            k = circuit.head.k if circuit.head is not None else None
            out = CompiledLogicNet(circuit, num_bits=num_bits, target=target or getattr(loaded, "target", "cpu"))
            out.net = loaded if not isinstance(loaded, Circuit) else api.compile(circuit, target=out.target,
                                                                                opt_level=0)
            out.optimized = out.net.circuit
        if num_classes is not None and k != num_classes:
            raise ValueError(f"{os.fspath(save_lib_path)!r} has {k if k else 'no'} classes, expected {num_classes}")
        return out

    def forward(self, x: Any, verbose: bool = False) -> Any:
        """bool [N, num_inputs] (numpy or torch) -> int32 class counts [N, k]: a torch IntTensor
        when torch is importable (as difflogic), else a numpy array."""
        if self.net is None:
            raise RuntimeError("call compile() (or load()) before forward()")
        out = self.net(x)
        if verbose:
            print(f"x.shape {tuple(np.shape(x))} -> out.shape {out.shape}")
        return _as_result(out)

    __call__ = forward

    def __repr__(self) -> str:
        state = f"target={self.net.target!r}" if self.net is not None else "not compiled"
        return f"<CompiledLogicNet {state} {self.circuit!r}>"


from .packbits import PackBitsTensor, run_packed  # noqa: E402,F401  (lgc/compat/packbits.py)

__all__ = ["CompiledLogicNet", "GroupSum", "LogicLayer", "PackBitsTensor", "SharedLibraryNet", "run_packed"]
