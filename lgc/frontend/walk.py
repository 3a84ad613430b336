"""One walk over a model's modules, shared by lowering and checkpoint config (torch.fx's Interpreter,
for ``nn.Sequential`` models).

Each module class registers one :class:`ModuleKind` handler, beside the class itself
(``@module_kind(LogicLayer, "logic")`` in :mod:`lgc.frontend.layers`): the activation shape it maps
an input shape to (raising ``ValueError`` when it cannot take that input), how it lowers into gates,
its checkpoint config entry and how to build it back from that entry. :func:`trace` flattens nested
``nn.Sequential``s, works out one sample's input shape, and returns one :class:`Step` per module
with the activation shape (one sample, no batch axis) before and after it. :func:`lgc.frontend.lower`
and :func:`lgc.frontend.model_config` / :func:`lgc.frontend.build_model` are short loops over
it, so a new layer kind touches one file. Cost: O(modules) Python work plus each handler's.

Roles: ``reshape`` (Flatten, Unflatten: no gates), ``encoder`` (Binarize: raw features -> input
bits; only reshapes may precede it), ``layer`` (gates), ``head`` (GroupSum: must come last).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Sequence

import numpy as np
from torch import nn

Shape = tuple[int, ...]


class ModuleKind:
    """How one module class lowers, reports shapes and round-trips through a checkpoint config.

    Subclasses override what their kind supports; the defaults say "not supported"."""

    module_class: type = nn.Module
    #: the config entry's ``"type"`` (layers) or top-level key (encoder: ``binarize``; head: ``k``/``tau``)
    name: str = ""
    role: str = "layer"

    def output_shape(self, m: nn.Module, shape: Shape) -> Shape:
        """The activation shape after ``m`` for input ``shape``; ValueError when ``m`` cannot take it."""
        raise NotImplementedError

    def input_shape(self, m: nn.Module) -> Shape | None:
        """The input shape ``m`` fixes by itself (``LogicLayer``: ``(in_dim,)``), or None."""
        return None

    def input_from_output(self, m: nn.Module, shape: Shape) -> Shape | None:
        """For modules that take any input: an input giving output ``shape`` (None: cannot tell)."""
        return None

    def lower(self, m: nn.Module, builder: Any, nodes: np.ndarray) -> np.ndarray:
        """Append ``m``'s gates for input node ids ``nodes`` (shaped like the input); return the output's."""
        raise NotImplementedError

    def config(self, m: nn.Module) -> dict[str, Any]:
        """``m``'s constructor arguments as plain data (the checkpoint config entry, without ``type``)."""
        raise NotImplementedError

    def model_defaults(self, m: nn.Module) -> dict[str, Any]:
        """Model-level config keys the first module of this kind sets (``dtype``, ``implementation``)."""
        return {}

    def build(self, spec: Mapping[str, Any], shape: Shape, ctx: "BuildContext") -> nn.Module:
        """A fresh module from its config entry ``spec`` for input ``shape`` (ValueError when it cannot be)."""
        raise NotImplementedError


_BY_CLASS: dict[type, ModuleKind] = {}
_BY_NAME: dict[str, ModuleKind] = {}


def module_kind(cls: type, name: str, role: str = "layer") -> Callable[[type], type]:
    """Class decorator: register a :class:`ModuleKind` subclass as the handler of module class ``cls``."""
    def register(handler: type) -> type:
        kind = handler()
        kind.module_class, kind.name, kind.role = cls, name, role
        _BY_CLASS[cls] = kind
        _BY_NAME[name] = kind
        return handler
    return register


def kind_of(m: nn.Module) -> ModuleKind | None:
    """The registered handler of ``m``'s class (or of its nearest registered base class), or None."""
    for cls in type(m).__mro__:
        if cls in _BY_CLASS:
            return _BY_CLASS[cls]
    return None


def kind_named(name: str) -> ModuleKind | None:
    return _BY_NAME.get(name)


def supported() -> str:
    """The registered module classes, for error messages."""
    return ", ".join([k.module_class.__name__ for k in _BY_CLASS.values()] + ["Identity"])


@dataclass(frozen=True)
class Step:
    """One module of a traced model: its position, handler and the activation shape before and after it."""
    pos: int
    module: nn.Module
    kind: ModuleKind
    in_shape: Shape
    out_shape: Shape

    @property
    def where(self) -> str:
        return f"module {self.pos} ({type(self.module).__name__})"


@dataclass
class Trace:
    """A model walked for one input shape: ``steps`` in order; ``input_shape`` is one raw sample's shape."""
    input_shape: Shape
    steps: list[Step] = field(default_factory=list)

    @property
    def encoder(self) -> Step | None:
        return next((s for s in self.steps if s.kind.role == "encoder"), None)

    @property
    def bits_shape(self) -> Shape:
        """The shape of the circuit's input bits: after the encoder, else the raw input shape."""
        enc = self.encoder
        return enc.out_shape if enc is not None else self.input_shape

    @property
    def body(self) -> list[Step]:
        """The steps that act on bits (those after the encoder; all of them without one)."""
        enc = self.encoder
        return self.steps[enc.pos + 1:] if enc is not None else list(self.steps)


def modules(model: Any, who: str = "lower") -> list[nn.Module]:
    """The model's modules in order: nested ``nn.Sequential``s flattened, ``nn.Identity`` dropped."""
    if isinstance(model, nn.Sequential):
        out: list[nn.Module] = []
        for m in model:
            out.extend(modules(m, who))
        return out
    if isinstance(model, nn.Identity):
        return []
    if isinstance(model, nn.Module):
        return [model]
    raise TypeError(f"{who} expects a torch.nn.Sequential of {supported()}, got {type(model).__name__}")


def as_input_shape(input_shape: Any) -> Shape | None:
    """``input_shape`` as a tuple: a sequence of ints is one sample's shape (no batch axis); an array
    or tensor with a ``.shape`` is an example batch, as ``torch.export`` takes, and gives ``shape[1:]``."""
    if input_shape is None:
        return None
    if hasattr(input_shape, "shape") and not isinstance(input_shape, (tuple, list)):
        shape = tuple(int(s) for s in input_shape.shape)
        if len(shape) < 2:
            raise ValueError(f"an example input is a batch [N, ...] with at least 2 dimensions, got shape {list(shape)}")
        return shape[1:]
    try:
        shape = tuple(int(s) for s in input_shape)
    except TypeError:
        raise ValueError(f"input_shape must be a sequence of ints (one sample, no batch axis) or an example batch, "
                         f"got {input_shape!r}") from None
    if not shape or min(shape) < 1:
        raise ValueError(f"input_shape must hold positive sizes, got {list(shape)}")
    return shape


def _infer_input_shape(mods: list[nn.Module], kinds: list[ModuleKind]) -> Shape:
    """The first module that fixes its input shape, mapped back through the shape-agnostic ones before it."""
    for i, (m, kind) in enumerate(zip(mods, kinds)):
        fixed = kind.input_shape(m)
        if fixed is None:
            continue
        shape: Shape | None = fixed
        for j in range(i - 1, -1, -1):
            shape = kinds[j].input_from_output(mods[j], shape)
            if shape is None:
                break
        if shape is not None:
            return shape
        break
    raise ValueError("cannot tell the model's input shape; pass input_shape=(C, H, W) (one sample, without the "
                     "batch axis) or an example batch, or give the first LogicConv2d input_size=(H, W)")


def trace(model: Any, input_shape: Any = None, who: str = "lower") -> Trace:
    """Walk ``model`` for one sample of ``input_shape`` (inferred when None); ValueError names the first
    module that cannot take its input, an unsupported module, or a misplaced Binarize/GroupSum."""
    mods = modules(model, who)
    kinds: list[ModuleKind] = []
    for pos, m in enumerate(mods):
        kind = kind_of(m)
        if kind is None:
            raise ValueError(f"{who}: unsupported module {pos}: {type(m).__name__} ({m!r}); supported modules are "
                             f"{supported()}")
        kinds.append(kind)
    if not any(k.role in ("layer", "encoder") for k in kinds):
        raise ValueError(f"{who}: the model has no LogicLayer, LogicConv2d or Binarize, nothing to lower "
                         f"(supported modules: {supported()})")
    shape = as_input_shape(input_shape)
    if shape is None:
        try:
            shape = _infer_input_shape(mods, kinds)
        except ValueError as e:
            raise ValueError(f"{who}: {e}") from None
    out = Trace(input_shape=shape)
    seen_roles: set[str] = set()
    for pos, (m, kind) in enumerate(zip(mods, kinds)):
        where = f"module {pos} ({type(m).__name__})"
        if "head" in seen_roles:
            raise ValueError(f"{who}: {where} follows the GroupSum; GroupSum must be the last module")
        if kind.role == "encoder" and (seen_roles - {"reshape"}):
            raise ValueError(f"{who}: {where}: a Binarize may only come first, before any gate or another Binarize")
        try:
            after = tuple(int(s) for s in kind.output_shape(m, shape))
        except ValueError as e:
            raise ValueError(f"{who}: {where}: {e}") from None
        out.steps.append(Step(pos, m, kind, shape, after))
        seen_roles.add(kind.role)
        shape = after
    return out


@dataclass(frozen=True)
class BuildContext:
    """What a handler's ``build`` may need besides its entry: the device, an implementation override,
    the model-level config (defaults such as ``connections``), and where the entry is."""
    device: Any
    implementation: str | None
    config: Mapping[str, Any]
    index: int
    raw_input: bool  # True when nothing (no Flatten, no Binarize) precedes this entry


def check_keys(spec: Mapping[str, Any], allowed: Sequence[str], what: str) -> dict[str, Any]:
    """``spec`` without ``type``; ValueError naming unknown keys."""
    kw = {k: v for k, v in spec.items() if k != "type"}
    extra = set(kw) - set(allowed)
    if extra:
        raise ValueError(f"{what} has unknown keys {sorted(extra)}; known: {sorted(allowed)}")
    return kw


# -- PyTorch's reshaping modules --------------------------------------------------------------
@module_kind(nn.Flatten, "flatten", role="reshape")
class _FlattenKind(ModuleKind):
    def output_shape(self, m: nn.Flatten, shape: Shape) -> Shape:
        if m.start_dim != 1 or m.end_dim != -1:
            raise ValueError("only Flatten(start_dim=1, end_dim=-1) is supported")
        return (math.prod(shape),)

    def input_from_output(self, m: nn.Flatten, shape: Shape) -> Shape | None:
        return (math.prod(shape),) if m.start_dim == 1 and m.end_dim == -1 else None

    def lower(self, m: nn.Flatten, builder: Any, nodes: np.ndarray) -> np.ndarray:
        return nodes.reshape(-1)

    def config(self, m: nn.Flatten) -> dict[str, Any]:
        return {}

    def build(self, spec: Mapping[str, Any], shape: Shape, ctx: BuildContext) -> nn.Module:
        check_keys(spec, (), "flatten")
        if len(shape) < 2:
            raise ValueError("flatten needs a [C, H, W] input")
        return nn.Flatten()


@module_kind(nn.Unflatten, "unflatten", role="reshape")
class _UnflattenKind(ModuleKind):
    def output_shape(self, m: nn.Unflatten, shape: Shape) -> Shape:
        sizes = tuple(int(v) for v in m.unflattened_size)
        if m.dim != 1 or len(shape) != 1:
            raise ValueError(f"only Unflatten(1, sizes) of a flat activation is supported, got {m} on {list(shape)}")
        if min(sizes, default=0) < 1 or math.prod(sizes) != shape[0]:
            raise ValueError(f"Unflatten to {list(sizes)} needs {math.prod(sizes)} values, got {shape[0]}")
        return sizes

    def input_shape(self, m: nn.Unflatten) -> Shape | None:
        return (math.prod(int(v) for v in m.unflattened_size),) if m.dim == 1 else None

    def lower(self, m: nn.Unflatten, builder: Any, nodes: np.ndarray) -> np.ndarray:
        return nodes.reshape(tuple(int(v) for v in m.unflattened_size))

    def config(self, m: nn.Unflatten) -> dict[str, Any]:
        return {"shape": [int(v) for v in m.unflattened_size]}

    def build(self, spec: Mapping[str, Any], shape: Shape, ctx: BuildContext) -> nn.Module:
        sizes = tuple(int(v) for v in check_keys(spec, ("shape",), "unflatten").get("shape", ()))
        if len(shape) != 1 or not sizes or min(sizes) < 1 or math.prod(sizes) != shape[0]:
            raise ValueError(f"unflatten needs a positive shape holding the {math.prod(shape)} flat values that "
                             f"reach it, got {spec.get('shape')}")
        return nn.Unflatten(1, sizes)
