"""lgc's PyTorch frontend: difflogic-compatible training layers, fast kernels, lowering to the IR.

- :class:`LogicLayer`, :class:`GroupSum` — difflogic's modules (same arguments and behaviour),
  with wiring in ``state_dict``, the 4-coefficient relaxation and ``python``/``cpu``/``cuda``
  implementations (:mod:`.kernels`); :class:`LogicSequential` — ``nn.Sequential`` that trains a run
  of them as one fused CPU call per direction (:mod:`.stack`; what ``build_model`` returns);
  :class:`FusedTrainStep` — forward, cross-entropy, backward and Adam in one CPU call (:mod:`.fused_step`;
  what ``lgc train`` takes).
- :class:`Binarize` (alias ``ThresholdEncoder``) — ``x > threshold`` input bits, lowered into
  the circuit's ``InputEncoder``.
- :func:`lower` — model -> ``lgc.ir.Circuit`` (eval semantics, :mod:`.lowering`); :func:`from_difflogic`.
- :mod:`.walk` — the one walk over a model's modules and the registry of module kinds (lowering and
  checkpoint config both use it; a new layer kind registers one handler beside its class).
- :func:`model_config`, :func:`build_model`, :func:`save_checkpoint`, :func:`load_checkpoint`.

torch is needed here only; the rest of lgc imports this package lazily.
"""
from .binarize import Binarize, ThresholdEncoder
from .conv import LogicConv2d, OrPool2d
from .checkpoint import build_model, load_checkpoint, model_config, read_checkpoint, save_checkpoint
from .kernels import IMPLEMENTATIONS, cpu_kernel_unavailable
from .layers import GroupSum, LogicLayer
from .stack import LogicSequential
from .fused_step import FusedTrainStep
from .difflogic_import import from_difflogic
from .lowering import lower
from .relax import PARAMETRIZATIONS, RELAXATIONS, RESIDUAL_LOGIT, gate_coefficients, hard_ops, set_relaxation

__all__ = [
    "Binarize", "FusedTrainStep", "GroupSum", "IMPLEMENTATIONS", "LogicConv2d", "LogicLayer", "LogicSequential", "OrPool2d", "PARAMETRIZATIONS", "RELAXATIONS",
    "RESIDUAL_LOGIT",
    "ThresholdEncoder",
    "build_model", "cpu_kernel_unavailable", "from_difflogic", "gate_coefficients", "hard_ops",
    "load_checkpoint",
    "lower", "model_config", "read_checkpoint", "save_checkpoint", "set_relaxation",
]
