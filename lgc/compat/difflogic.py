"""difflogic's inference names, so a difflogic script runs by changing its import.

``from lgc.compat.difflogic import CompiledLogicNet`` instead of ``from difflogic import
CompiledLogicNet``: same constructor, ``compile``, ``load`` and ``forward``, but the network is
lowered to an lgc Circuit, optimised by lgc's passes and run by the fastest CPU target here
(a prebuilt table-driven kernel), so compiling takes a fraction of a second instead of gcc
minutes. ``forward`` returns int32 class counts like difflogic (a torch tensor when given one,
else a numpy array); torch is imported only when the model or input is a torch object.
"""
from __future__ import annotations

import os
from typing import Any

from .._build import BuildError, find_tool
from ..ir import Circuit

_NUM_BITS = (8, 16, 32, 64)


def _to_circuit(model: Any) -> Circuit:
    if isinstance(model, Circuit):
        return model.validate()
    from ..frontend import from_difflogic, lower  # torch is needed for a torch model only
    return lower(from_difflogic(model))


class CompiledLogicNet:
    """difflogic's ``CompiledLogicNet``: ``CompiledLogicNet(model, num_bits=64, cpu_compiler='gcc')``,
    then ``.compile()`` and ``.forward(x)`` (or ``net(x)``) -> int32 class counts [N, k].

    ``model`` is an lgc or difflogic ``nn.Sequential`` (LogicLayers + GroupSum), or an lgc
    Circuit. ``num_bits`` is accepted for compatibility (lgc picks the host's vector width);
    ``cpu_compiler`` names the C compiler for the C targets; ``device`` must be ``'cpu'``.
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

    @property
    def num_classes(self) -> int | None:
        head = self.circuit.head if self.circuit is not None else None
        return head.k if head is not None else None

    def _compiler_env(self) -> dict[str, str]:
        if self.cpu_compiler in (None, "gcc"):
            return {}
        if find_tool(self.cpu_compiler) is None:
            raise BuildError(f"cpu_compiler {self.cpu_compiler!r} not found on PATH")
        return {"LGC_CC": self.cpu_compiler}

    def compile(self, opt_level: int = 1, save_lib_path: str | os.PathLike | None = None,
                verbose: bool = False) -> "CompiledLogicNet":
        """Optimise at lgc pass level ``opt_level`` (difflogic's default 1: dead gates, constants,
        pass-throughs; 2 adds NOT absorption and structural hashing) and build. With
        ``save_lib_path``, also write a ``.lgc`` file that :meth:`load` (or ``lgc.load``) reads back."""
        if self.circuit is None:
            raise ValueError("CompiledLogicNet has no model to compile")
        if self.model is not None and not isinstance(self.model, Circuit):
            self.circuit = _to_circuit(self.model)  # the model as it is now, as difflogic reads it at compile()
        if self.circuit.head is None:
            raise ValueError("CompiledLogicNet needs a model that ends in GroupSum (class counts)")
        import time
        from .. import api
        t0 = time.perf_counter()
        env = self._compiler_env()
        old = {k: os.environ.get(k) for k in env}
        os.environ.update(env)
        try:
            self.net = api.compile(self.circuit, target=self.target, opt_level=opt_level, threads=self.threads)
        finally:
            for k, v in old.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v
        if verbose or self.verbose:
            print(f"lgc: {self.circuit.num_gates} gates -> {self.net.circuit.num_gates} after O{opt_level}, "
                  f"target {self.net.target}, {time.perf_counter() - t0:.2f} s")
        if save_lib_path is not None:
            self.net.save(save_lib_path)
        return self

    @staticmethod
    def load(save_lib_path: str | os.PathLike, num_classes: int | None = None, num_bits: int = 64,
             target: str | None = None) -> "CompiledLogicNet":
        """Read a file written by ``compile(save_lib_path=...)`` (or any ``.lgc`` circuit)."""
        from .. import api
        loaded = api.load(save_lib_path, target=target)  # target=None: the saved target, or the best here
        circuit = loaded if isinstance(loaded, Circuit) else loaded.circuit
        if num_classes is not None and (circuit.head is None or circuit.head.k != num_classes):
            raise ValueError(f"{os.fspath(save_lib_path)!r} has {circuit.head.k if circuit.head else 'no'} classes, "
                             f"expected {num_classes}")
        out = CompiledLogicNet(circuit, num_bits=num_bits, target=target or getattr(loaded, "target", "cpu"))
        out.net = loaded if not isinstance(loaded, Circuit) else api.compile(circuit, target=out.target, opt_level=0)
        return out

    def forward(self, x: Any, verbose: bool = False) -> Any:
        """bool [N, num_inputs] (numpy or torch) -> int32 class counts [N, k]."""
        if self.net is None:
            raise RuntimeError("call compile() (or load()) before forward()")
        is_torch = hasattr(x, "detach") and hasattr(x, "cpu")
        out = self.net(x)
        if is_torch:
            import torch
            return torch.from_numpy(out)
        return out

    __call__ = forward

    def __repr__(self) -> str:
        state = f"target={self.net.target!r}" if self.net is not None else "not compiled"
        return f"<CompiledLogicNet {state} {self.circuit!r}>"


# -- PackBitsTensor (difflogic's packed-bits GPU inference; lgc/compat/packbits.py) --------------
from .packbits import PackBitsTensor, run_packed  # noqa: E402,F401  (lgc/compat/packbits.py)
