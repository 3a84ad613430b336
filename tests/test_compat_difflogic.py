"""lgc.compat.difflogic.CompiledLogicNet: difflogic's inference API on top of lgc.compile."""
from __future__ import annotations

import numpy as np
import pytest

from lgc.compat.difflogic import CompiledLogicNet
from lgc.ir import random_layered_circuit, simulate


def test_circuit_model_compile_forward_save_load(tmp_path):
    c = random_layered_circuit(64, [200, 100], num_classes=5, tau=10.0, seed=1)
    x = np.random.default_rng(0).random((300, 64)) < 0.5
    net = CompiledLogicNet(c, num_bits=64, cpu_compiler="gcc")
    net.compile(opt_level=1, save_lib_path=tmp_path / "net.lgc")
    out = net.forward(x)
    assert out.dtype == np.int32 and np.array_equal(out, simulate(c, x))
    again = CompiledLogicNet.load(tmp_path / "net.lgc", num_classes=5, num_bits=64)
    assert np.array_equal(again(x), out)
    with pytest.raises(ValueError):
        CompiledLogicNet.load(tmp_path / "net.lgc", num_classes=3)


def test_errors():
    c = random_layered_circuit(8, [16], num_classes=2, seed=0)
    with pytest.raises(ValueError):
        CompiledLogicNet(c, device="cuda")
    with pytest.raises(ValueError):
        CompiledLogicNet(c, num_bits=12)
    with pytest.raises(RuntimeError):
        CompiledLogicNet(c).forward(np.zeros((1, 8), bool))
    with pytest.raises(ValueError):
        CompiledLogicNet(c.replace(head=None)).compile()
    with pytest.raises(ValueError):
        CompiledLogicNet(c).compile().forward(np.zeros((1, 9), bool))


def test_torch_models_lgc_and_difflogic_shaped():
    torch = pytest.importorskip("torch")
    from lgc.frontend import GroupSum, LogicLayer
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Flatten(), LogicLayer(49, 120), LogicLayer(120, 60), GroupSum(k=3, tau=10))
    model.eval()
    x = torch.rand(200, 7, 7) > 0.5
    net = CompiledLogicNet(model).compile()
    counts = net(x.reshape(200, 49))
    assert isinstance(counts, torch.Tensor)
    expect = torch.round(model(x.float()) * 10).to(torch.int32)
    assert torch.equal(counts, expect)

    class FakeDifflogicLayer:  # difflogic's attribute names, without difflogic installed
        def __init__(self, layer):
            self.weights, self.in_dim, self.out_dim = layer.weights.detach().clone(), layer.in_dim, layer.out_dim
            self.indices = tuple(t.clone() for t in _indices(layer))

    class FakeGroupSum:
        k, tau = 3, 10.0

    fake = [FakeDifflogicLayer(model[1]), FakeDifflogicLayer(model[2]), FakeGroupSum()]
    net2 = CompiledLogicNet(fake).compile(opt_level=2)
    assert np.array_equal(net2(x.reshape(200, 49).numpy()), counts.numpy())


def _indices(layer):
    if hasattr(layer, "indices"):
        return layer.indices
    return layer.a, layer.b
