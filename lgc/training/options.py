"""Command-line options generated from a config dataclass, so each default is written once.

A field declares its flags and help in its metadata (:func:`option`); :func:`add_arguments` turns a
dataclass into argparse options (nested dataclasses, such as the conv block settings, become a
prefixed group) and :func:`from_arguments` builds the config back from the parsed namespace.
The option's flat name (``conv_last_pool`` for ``conv.last_pool``) is the argparse ``dest`` and the
name resume errors and run logs use. Pure Python; no torch.
"""
from __future__ import annotations

import argparse
import dataclasses
from typing import Any, Iterator

_MISSING = dataclasses.MISSING


def option(default: Any = _MISSING, *flags: str, help: str, type: Any = None, choices: Any = None,
           negate: bool = False, metavar: str | None = None, group: str = "experiment", mutable: bool = False,
           nargs: str | None = None, default_factory: Any = _MISSING, cli: bool = True) -> Any:
    """A dataclass field with its command-line spelling.

    ``flags``: the option strings (default ``--field-name``); ``negate``: a boolean whose flag turns
    it off (``--no-progress``); ``mutable``: the option may change when a run is resumed;
    ``cli=False``: a library-only field (no flag)."""
    meta = {"flags": flags, "help": help, "type": type, "choices": choices, "negate": negate, "metavar": metavar,
            "group": group, "mutable": mutable, "nargs": nargs, "cli": cli}
    if default_factory is not _MISSING:
        return dataclasses.field(default_factory=default_factory, metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


def _default(f: dataclasses.Field) -> Any:
    return f.default_factory() if f.default_factory is not _MISSING else f.default  # type: ignore[misc]


def leaf_fields(cls: type, prefix: str = "") -> Iterator[tuple[str, dataclasses.Field, tuple[str, ...]]]:
    """(flat name, field, path) for every leaf field of ``cls``; nested dataclasses are walked."""
    for f in dataclasses.fields(cls):
        default = _default(f)
        if dataclasses.is_dataclass(default):
            yield from ((n, g, (f.name, *p)) for n, g, p in leaf_fields(type(default), f"{prefix}{f.name}_"))
        else:
            yield f"{prefix}{f.name}", f, (f.name,)


def add_arguments(parser: argparse.ArgumentParser, cls: type, titles: dict[str, str] | None = None) -> None:
    """Add one option per leaf field of ``cls`` (fields with ``cli=False`` are left out)."""
    groups: dict[str, Any] = {}
    for name, f, _ in leaf_fields(cls):
        meta = f.metadata
        if not meta.get("cli", True):
            continue
        group = meta.get("group", "experiment")
        if group not in groups:
            groups[group] = parser.add_argument_group((titles or {}).get(group, group))
        flags = meta.get("flags") or (f"--{name.replace('_', '-')}",)
        default = _default(f)
        kw: dict[str, Any] = {"dest": name, "default": default, "help": meta["help"]}
        if isinstance(default, bool):
            kw["action"] = "store_false" if meta.get("negate") else "store_true"
        else:
            kw["type"] = meta.get("type") or (type(default) if default is not None and not isinstance(default, list)
                                              else str)
            for key in ("choices", "metavar", "nargs"):
                if meta.get(key) is not None:
                    kw[key] = meta[key]
            if default not in (None, [], ()):
                kw["help"] += f" (default {default})"
        groups[group].add_argument(*flags, **kw)


def from_arguments(cls: type, args: argparse.Namespace, prefix: str = "") -> Any:
    """The config ``cls`` built from a namespace parsed with :func:`add_arguments`."""
    kwargs = {}
    for f in dataclasses.fields(cls):
        default = _default(f)
        if dataclasses.is_dataclass(default):
            kwargs[f.name] = from_arguments(type(default), args, f"{prefix}{f.name}_")
        elif hasattr(args, prefix + f.name):
            value = getattr(args, prefix + f.name)
            kwargs[f.name] = list(value) if isinstance(default, list) and value is not None else value
    return cls(**kwargs)


def flat_values(config: Any) -> dict[str, Any]:
    """``{flat name: value}`` of every leaf field (``conv_last_pool`` for ``config.conv.last_pool``)."""
    out = {}
    for name, _, path in leaf_fields(type(config)):
        value = config
        for part in path:
            value = getattr(value, part)
        out[name] = value
    return out
