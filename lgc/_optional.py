"""Optional dependencies: check for one before long work starts, and name the extra that installs it.

``require("matplotlib", extra="plot")`` returns the imported module, or raises
:class:`MissingDependency` (an ``ImportError``) whose one-line message names the pip extra:
``lgc plot needs matplotlib: pip install 'lgc[plot]'``. The CLI prints that line, not a traceback.
Cost: one ``importlib.import_module`` (cached by Python after the first call).
"""
from __future__ import annotations

import importlib
import importlib.util
from types import ModuleType

#: pip extra -> the import names it provides (pyproject.toml's optional-dependencies say the same).
EXTRAS: dict[str, tuple[str, ...]] = {
    "train": ("torch", "ninja", "tqdm", "sklearn"),
    "plot": ("matplotlib",),
    "sat": ("pysat",),
}


#: import name -> the distribution pip installs, where they differ
DISTRIBUTIONS = {"pysat": "python-sat", "sklearn": "scikit-learn"}


class MissingDependency(ImportError):
    """An optional dependency is not installed; the message says which extra installs it."""


def extra_for(module: str) -> str | None:
    """The extra that installs ``module`` (or its top-level package), or None for other modules."""
    top = module.split(".")[0]
    return next((extra for extra, mods in EXTRAS.items() if top in mods), None)


def available(module: str) -> bool:
    """True when ``module`` can be imported (found on the path), without importing it."""
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def require(module: str, *, extra: str, purpose: str | None = None) -> ModuleType:
    """Import ``module`` (e.g. ``"matplotlib"``) or raise :class:`MissingDependency` naming ``extra``.

    ``purpose`` says what needs it ("lgc plot", "equivalent(method='sat')"); the message reads
    ``<purpose> needs <module>: pip install 'lgc[<extra>]'``. Raises ``ValueError`` for an extra
    that pyproject.toml does not declare (a bug in the caller)."""
    if extra not in EXTRAS:
        raise ValueError(f"require: unknown extra {extra!r}; known: {sorted(EXTRAS)}")
    try:
        return importlib.import_module(module)
    except ImportError as e:
        who = purpose or "this feature"
        top = module.split(".")[0]
        raise MissingDependency(f"{who} needs {DISTRIBUTIONS.get(top, top)}, which is not installed: "
                                f"pip install 'lgc[{extra}]'") from e
