"""lgc.compat.difflogic.PackBitsTensor and run_packed on the CPU (the GPU path is in test_cuda.py)."""
from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import lgc  # noqa: E402
from lgc.compat.difflogic import PackBitsTensor, run_packed  # noqa: E402
from lgc.frontend import GroupSum, LogicLayer  # noqa: E402
from lgc.ir import random_layered_circuit, simulate  # noqa: E402


def test_packs_like_pack_bits():
    x = np.random.default_rng(0).random((130, 7)) < 0.5
    p = PackBitsTensor(torch.from_numpy(x), bit_count=32)
    assert p.n == 130 and p.num_bits == 7 and tuple(p.t.shape) == (7, 3)
    assert np.array_equal(p.packed_bits().words, lgc.ir.pack_bits(x).words)


def test_rejects_bad_input():
    with pytest.raises(ValueError, match="bit_count"):
        PackBitsTensor(torch.zeros((2, 3), dtype=torch.bool), bit_count=12)
    with pytest.raises(ValueError, match="bool"):
        PackBitsTensor(torch.full((2, 3), 2.0))
    with pytest.raises(ValueError, match=r"\[N, num_bits\]"):
        PackBitsTensor(torch.zeros(3, dtype=torch.bool))
    with pytest.raises(ValueError, match="PackBitsTensor"):
        run_packed(random_layered_circuit(4, [8], num_classes=2, seed=0), torch.zeros((2, 4), dtype=torch.bool))


def test_run_packed_matches_model_and_oracle():
    torch.manual_seed(0)
    model = torch.nn.Sequential(LogicLayer(24, 64), LogicLayer(64, 40), GroupSum(k=4, tau=2.0)).eval()
    x = torch.rand(300, 24) < 0.5
    out = run_packed(model, PackBitsTensor(x))
    assert out.dtype == torch.int32 and tuple(out.shape) == (300, 4)
    assert np.array_equal(out.numpy(), simulate(lgc.lower(model), x.numpy()))
    with torch.no_grad():
        assert torch.equal(out, torch.round(model(x.float()) * 2.0).to(torch.int32))
    # a parameter change is seen (the compiled net is rebuilt, not served stale)
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(-1.0)
    again = run_packed(model, PackBitsTensor(x))
    assert np.array_equal(again.numpy(), simulate(lgc.lower(model), x.numpy()))


def test_run_packed_checks_width():
    c = random_layered_circuit(6, [10], num_classes=2, seed=1)
    with pytest.raises(ValueError, match="input bits"):
        run_packed(c, PackBitsTensor(torch.zeros((5, 7), dtype=torch.bool)))


def test_layer_chain_hooks_match_run_packed():
    """What LogicLayer.forward / GroupSum.forward would do for a PackBitsTensor (then / group_sum)."""
    torch.manual_seed(1)
    model = torch.nn.Sequential(torch.nn.Flatten(), LogicLayer(20, 48), LogicLayer(48, 30), GroupSum(k=3, tau=1.0))
    x = torch.rand(150, 20) < 0.5
    p = PackBitsTensor(x)
    for layer in list(model)[:-1]:
        p = p.then(layer)
    out = p.group_sum(model[-1])
    assert np.array_equal(out.numpy(), simulate(lgc.lower(model), x.numpy()))
    assert torch.equal(p.group_sum(model[-1]), out)  # the cached chain gives the same
    with pytest.raises(ValueError, match="queued layers"):
        run_packed(model, p)


def test_model_called_on_packbitstensor_like_difflogic():
    torch.manual_seed(2)
    model = torch.nn.Sequential(torch.nn.Flatten(), LogicLayer(20, 48), LogicLayer(48, 30), GroupSum(k=3, tau=4.0)).eval()
    x = torch.rand(97, 20) < 0.5
    out = model(PackBitsTensor(x))
    assert out.dtype == torch.int32
    assert np.array_equal(out.numpy(), simulate(lgc.lower(model), x.numpy()))
    with torch.no_grad():
        assert torch.equal(out, torch.round(model(x.float()) * 4.0).to(torch.int32))
