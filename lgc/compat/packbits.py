"""difflogic's ``PackBitsTensor``: a batch packed one bit per sample, run by a compiled circuit.

``packed = PackBitsTensor(x_bool)`` packs a torch bool tensor ``[N, n]`` (on the GPU by the CUDA
runtime's pack kernel when the tensor is on a CUDA device and the ``cuda`` target is available,
else on the host with numpy) into ``packed.t``: 64-bit words ``[n, ceil(N/64)]``, sample j = bit
j % 64 of word j // 64. ``run_packed(model, packed)`` lowers the model (an lgc ``nn.Sequential``
of LogicLayers ending in GroupSum, or a Circuit), optimises it, builds it for ``cuda`` (packed on
a GPU) or ``cpu``, and returns int32 class counts ``[N, k]`` — difflogic's ``model(packed)``
result (counts, not divided by tau) — as a torch tensor on the packed batch's device; uint8 bits
``[N, O]`` when the model has no GroupSum. The model is lowered on every call (O(gates), cheap
next to optimising and building) and the compiled net is cached per model under the lowered
circuit's content hash (hard ops, wiring, head, encoder): any change of what the circuit
computes, however it was made (an optimiser step, ``load_state_dict``, ``weights.data.copy_``,
which torch's version counters do not see), rebuilds it, and nothing else does.

``model(PackBitsTensor(x))`` works as in difflogic: ``nn.Flatten`` is a no-op on it,
``LogicLayer.forward`` returns ``x.then(self)`` (queues the layer) and ``GroupSum.forward`` returns
``x.group_sum(self)``, which runs the queued chain through :func:`run_packed`. The frontend
recognises it by duck typing, so it need not import lgc.compat.
"""
from __future__ import annotations

import weakref
from typing import Any

import numpy as np

from ..ir import Circuit, PackedBits, pack_bits

_BIT_COUNTS = (8, 16, 32, 64)


def _cuda_ok() -> bool:
    from ..backends import cuda
    return cuda.available() is None


class PackBitsTensor:
    """A bool batch ``[N, n]`` packed into 64-bit words ``t`` of shape ``[n, ceil(N/64)]``.

    ``bit_count`` (8, 16, 32 or 64) is accepted for difflogic compatibility; lgc always packs
    64 samples per word (the result does not depend on it). ``device`` defaults to ``t``'s.
    """

    def __init__(self, t: Any, bit_count: int = 64, device: Any = None):
        import torch
        if bit_count not in _BIT_COUNTS:
            raise ValueError(f"bit_count must be one of {_BIT_COUNTS}, got {bit_count!r}")
        if not isinstance(t, torch.Tensor):
            t = torch.as_tensor(np.asarray(t))
        if t.dim() != 2:
            raise ValueError(f"PackBitsTensor takes a bool tensor [N, num_bits], got shape {list(t.shape)}")
        if t.dtype != torch.bool:
            if t.dtype.is_complex or (t.numel() and not bool(((t == 0) | (t == 1)).all())):
                raise ValueError(f"PackBitsTensor takes bool (or 0/1) values, got {t.dtype} with other values")
            t = t.to(torch.bool)
        if device is not None:
            t = t.to(device)
        self.bit_count = bit_count
        self.layers: tuple = ()  # layers queued by LogicLayer.forward (see then / group_sum)
        self.n, self.num_bits = int(t.shape[0]), int(t.shape[1])
        self.device = t.device
        words = (self.n + 63) // 64
        if t.device.type == "cuda" and _cuda_ok():
            from ..backends import cuda
            t = t.contiguous()
            self.t = torch.zeros((self.num_bits, words), dtype=torch.int64, device=t.device)
            if self.n and self.num_bits:
                stream = torch.cuda.current_stream(t.device).cuda_stream
                cuda.check(cuda.library().lgc_cu_pack(t.data_ptr(), self.n, self.num_bits, self.t.data_ptr(),
                                                      words, stream), "packing bits on the GPU")
        else:
            host = pack_bits(t.detach().cpu().numpy()).words
            self.t = torch.from_numpy(host.view(np.int64)).to(t.device)

    def then(self, layer: Any) -> "PackBitsTensor":
        """The same batch with ``layer`` (a LogicLayer, Flatten, ...) queued after the queued ones: what
        ``LogicLayer.forward`` returns for a PackBitsTensor, so ``model(packed)`` works layer by layer."""
        out = object.__new__(PackBitsTensor)
        out.__dict__.update(self.__dict__)
        out.layers = self.layers + (layer,)
        return out

    def flatten(self, start_dim: int = 1, end_dim: int = -1) -> "PackBitsTensor":
        """``nn.Flatten`` on a packed batch: samples are already flat rows of bits, so a no-op."""
        if (start_dim, end_dim) != (1, -1):
            raise ValueError("a PackBitsTensor can only be flattened from dim 1 (samples stay rows)")
        return self

    def group_sum(self, head: Any):
        """Run the queued layers and ``head`` (a GroupSum, or difflogic's ``k``: an int) on the batch:
        int32 class counts [N, k] (difflogic's ``GroupSum.forward`` result for a PackBitsTensor)."""
        import torch
        if isinstance(head, (int, np.integer)) and not isinstance(head, bool):
            head = _group_sum_of(int(head), self.num_bits if not self.layers else None)
            if isinstance(head, Circuit):   # nothing queued: count the packed bits themselves
                return run_packed(head, PackBitsTensor._plain(self))
        key = tuple(id(m) for m in self.layers) + (id(head),)
        model = _CHAINS.get(key)
        if model is None or any(a is not b for a, b in zip(model, (*self.layers, head))):
            model = torch.nn.Sequential(*self.layers, head)
            if len(_CHAINS) >= 8:
                _CHAINS.pop(next(iter(_CHAINS)))
            _CHAINS[key] = model
        return run_packed(model, PackBitsTensor._plain(self))

    @staticmethod
    def _plain(p: "PackBitsTensor") -> "PackBitsTensor":
        out = object.__new__(PackBitsTensor)
        out.__dict__.update(p.__dict__)
        out.layers = ()
        return out

    def packed_bits(self) -> PackedBits:
        """The batch as :class:`lgc.ir.PackedBits` on the host (a copy when on a GPU)."""
        return PackedBits(self.t.detach().cpu().numpy().view(np.uint64), self.n)

    def __repr__(self) -> str:
        return f"PackBitsTensor(n={self.n}, num_bits={self.num_bits}, device={self.device})"


def _group_sum_of(k: int, num_bits: int | None) -> Any:
    """difflogic's ``group_sum(k)``: with no layers queued (``num_bits`` given), the circuit that
    counts the ``num_bits`` packed bits in ``k`` groups; else a GroupSum module (one per ``k``, so
    the compiled chain stays cached)."""
    from ..ir import GroupSumHead
    if k < 1:
        raise ValueError(f"group_sum needs k >= 1 classes, got {k}")
    if num_bits is not None:
        if num_bits % k:
            raise ValueError(f"group_sum({k}): {num_bits} bits do not split into {k} equal groups")
        return Circuit(num_bits, outputs=np.arange(num_bits), head=GroupSumHead(k, 1.0))
    if k not in _GROUP_SUMS:
        from ..frontend import GroupSum
        _GROUP_SUMS[k] = GroupSum(k, 1.0)
    return _GROUP_SUMS[k]


_GROUP_SUMS: dict[int, Any] = {}
_CHAINS: dict[tuple, Any] = {}  # queued layer chains -> the Sequential that holds them (its net is cached)
_NETS: "weakref.WeakKeyDictionary[Any, tuple[Any, Any]]" = weakref.WeakKeyDictionary()


def compiled_for(model: Any, target: str, opt_level: int = 2):
    """The model (or Circuit) compiled for ``target``; cached per model by what determines the
    circuit (the lowered circuit's content hash), so it is never stale."""
    from .. import api
    if isinstance(model, Circuit):
        return api.compile(model, target=target, opt_level=opt_level)
    circuit = api.lower(model)
    key = (target, opt_level, circuit.content_hash())
    hit = _NETS.get(model)
    if hit is not None and hit[0] == key:
        return hit[1]
    net = api.compile(circuit, target=target, opt_level=opt_level)
    _NETS[model] = (key, net)
    return net


def run_packed(model: Any, packed: PackBitsTensor, *, opt_level: int = 2):
    """difflogic's ``model(PackBitsTensor(x))``: int32 class counts [N, k] (torch, on the packed
    batch's device), computed by the compiled circuit (``cuda`` on a GPU, else ``cpu``)."""
    import torch
    if not isinstance(packed, PackBitsTensor):
        raise ValueError(f"run_packed takes a PackBitsTensor, got {type(packed).__name__}")
    if packed.layers:
        raise ValueError("this PackBitsTensor has queued layers; finish the chain with GroupSum (group_sum)")
    on_gpu = packed.t.device.type == "cuda" and _cuda_ok()
    net = compiled_for(model, "cuda" if on_gpu else "cpu", opt_level)
    if net.circuit.num_inputs != packed.num_bits:
        raise ValueError(f"the model takes {net.circuit.num_inputs} input bits, the packed batch has {packed.num_bits}")
    if on_gpu:
        return net.run_device_words(packed.t, packed.n)
    return torch.from_numpy(np.ascontiguousarray(net(packed.packed_bits()))).to(packed.device)
