"""lgc: a compiler for differentiable logic gate networks.

``lgc.compile(model, target="cpu")`` lowers a trained network into a gate-level circuit
(``lgc.ir.Circuit``), optimises it (``lgc.passes``) and builds fast code (``lgc.backends``).
Submodules and the API functions load lazily: ``import lgc`` needs numpy only.
"""
from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_API = ("compile", "lower", "optimize", "export", "load", "targets")
_SUBMODULES = ("ir", "passes", "backends", "frontend", "data", "cli", "compat", "api")

__all__ = [*_API, *_SUBMODULES, "__version__"]


def __getattr__(name: str) -> Any:
    if name in _API:
        return getattr(importlib.import_module(".api", __name__), name)
    if name in _SUBMODULES:
        return importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module 'lgc' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
