"""Input-wise gate logits (``parametrization="inputwise"``, 4 logits per gate, one per truth-table
row): the row -> coefficient matrix against the op tables, the relaxed gate against an independent
formula, gradients, eval gates and lowering bit-exact against the eval-mode model, residual init,
relaxations, checkpoints, the CLI config and errors."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from hypothesis import given, strategies as st
from torch import nn

from conftest import need
from lgc.frontend import GroupSum, LogicLayer, build_model, load_checkpoint, lower, model_config, save_checkpoint
from lgc.frontend import set_relaxation
from lgc.frontend.conv import LogicConv2d, OrPool2d
from lgc.frontend.conv_kernels import cpu_kernel_unavailable
from lgc.frontend.kernels import cpu_kernel_unavailable as cpu_layer_unavailable
from lgc.frontend.relax import (INPUTWISE, gate_coefficients, gumbel_st_coefficients, hard_ops,
                                inputwise_residual_logit, parametrization_of)
from lgc.ir import ops, simulate


def rows(op: int) -> np.ndarray:
    """The truth table of ``op`` as rows (f00, f01, f10, f11), read from ``ops.TRUTH``."""
    return np.array([ops.TRUTH[op, a, b] for a in (0, 1) for b in (0, 1)])


def inputwise_reference(x: torch.Tensor, w: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """sum over rows (i, j) of sigmoid(w_ij) P(p = i) P(q = j): written out, not via INPUTWISE."""
    p, q = x[..., a], x[..., b]
    s = torch.sigmoid(w)
    return s[:, 0] * (1 - p) * (1 - q) + s[:, 1] * (1 - p) * q + s[:, 2] * p * (1 - q) + s[:, 3] * p * q


def test_rows_to_coefficients_matrix_matches_the_op_tables():
    for op in range(16):
        np.testing.assert_array_equal(rows(op) @ INPUTWISE, ops.RELAX[op])
        logits = torch.tensor(2.0 * rows(op) - 1.0)
        assert int(hard_ops(logits)) == op
        c = gate_coefficients(logits, hard=True).numpy()
        for p in (0, 1):
            for q in (0, 1):
                assert c[0] + c[1] * p + c[2] * q + c[3] * p * q == ops.TRUTH[op, p, q]
    assert parametrization_of(torch.zeros(3, 16)) == "gates" and parametrization_of(torch.zeros(3, 4)) == "inputwise"
    with pytest.raises(ValueError, match="last dimension of 16"):
        parametrization_of(torch.zeros(3, 5))


def test_zero_logit_rows_are_false_in_eval():
    """``w > 0`` decides a row, so an all-zero logit row is the FALSE gate (a fixed tie rule)."""
    assert hard_ops(torch.zeros(2, 4)).tolist() == [ops.FALSE, ops.FALSE]
    assert hard_ops(torch.tensor([[0.0, 0.0, 1e-30, 1e-30]])).tolist() == [ops.A]


@pytest.mark.parametrize("impl", ["python", "cpu"])
def test_relaxed_gate_equals_the_row_formula_and_gradcheck(impl):
    if impl == "cpu":
        need("cpu-kernel", cpu_layer_unavailable())
    torch.manual_seed(0)
    layer = LogicLayer(12, 30, implementation=impl, parametrization="inputwise").double()
    assert layer.weights.shape == (30, 4)
    x = torch.rand(7, 12, dtype=torch.float64)
    torch.testing.assert_close(layer(x), inputwise_reference(x, layer.weights, *layer.indices), rtol=1e-12, atol=1e-12)
    w = layer.weights.detach().clone().requires_grad_(True)
    xg = x[:3].clone().requires_grad_(True)
    f = lambda x, w: torch.func.functional_call(layer, {"weights": w}, (x,))  # noqa: E731
    assert torch.autograd.gradcheck(f, (xg, w), eps=1e-6, atol=1e-6)


@pytest.mark.parametrize("impl", ["python", "cpu"])
def test_conv_gradcheck_and_kernel_agreement(impl):
    if impl == "cpu":
        need("cpu-kernel", cpu_kernel_unavailable())
    torch.manual_seed(1)
    layer = LogicConv2d(2, 3, 3, depth=2, padding=1, residual_init=False, implementation=impl,
                        parametrization="inputwise").double()
    assert layer.weights.shape == (3, 3, 4)
    x = torch.rand(1, 2, 4, 5, dtype=torch.float64, requires_grad=True)
    w = layer.weights.detach().clone().requires_grad_(True)
    f = lambda x, w: torch.func.functional_call(layer, {"weights": w}, (x,))  # noqa: E731
    assert torch.autograd.gradcheck(f, (x, w), eps=1e-6, atol=1e-6)
    twin = LogicConv2d(2, 3, 3, depth=2, padding=1, implementation="python", parametrization="inputwise").double()
    twin.load_state_dict(layer.state_dict())
    torch.testing.assert_close(layer(x), twin(x), rtol=1e-12, atol=1e-12)


def test_residual_init_is_the_gates_residual_init_as_a_relaxed_gate():
    for logit in (True, 2.0):
        iw = LogicLayer(5, 8, residual_init=logit, parametrization="inputwise", implementation="python")
        gw = LogicLayer(5, 8, residual_init=logit, implementation="python")
        torch.testing.assert_close(iw.coefficients(), gw.coefficients(), rtol=0, atol=1e-6)
        assert (hard_ops(iw.weights) == ops.A).all()
    assert inputwise_residual_logit(5.0) == pytest.approx(np.log(0.9511 / 0.0489), abs=2e-3)


def _inputwise_model(seed: int, in_dim: int, widths: list[int], k: int, zeros: bool) -> nn.Sequential:
    torch.manual_seed(seed)
    mods: list[nn.Module] = [nn.Flatten()]
    width = in_dim
    for w in widths:
        layer = LogicLayer(width, w, implementation="python", parametrization="inputwise")
        if zeros:   # many logits exactly 0 (rows on the decision boundary)
            with torch.no_grad():
                layer.weights.mul_(torch.randint(0, 2, layer.weights.shape))
        mods.append(layer)
        width = w
    return nn.Sequential(*mods, GroupSum(k, 2.0))


@given(seed=st.integers(0, 2**31 - 1), in_dim=st.integers(1, 10), depth=st.integers(1, 3),
       zeros=st.booleans(), n=st.sampled_from([1, 64, 100]))
def test_lowered_inputwise_model_equals_eval_mode(seed, in_dim, depth, zeros, n):
    rng = np.random.default_rng(seed)
    widths = [int(w) * 3 for w in rng.integers(1, 8, size=depth)]
    model = _inputwise_model(seed, in_dim, widths, 3, zeros).train()
    x = rng.random((n, in_dim)) < 0.5
    circuit = lower(model)
    with torch.no_grad():
        want = torch.round(model.eval()(torch.from_numpy(x.astype(np.float32))) * 2.0).to(torch.int32).numpy()
    np.testing.assert_array_equal(simulate(circuit, x), want)


@pytest.mark.parametrize("seed", [0, 1])
def test_lowered_inputwise_conv_model_equals_eval_mode(seed):
    torch.manual_seed(seed)
    model = nn.Sequential(LogicConv2d(2, 5, 3, depth=3, padding=1, residual_init=False, input_size=(8, 7),
                                      parametrization="inputwise"), OrPool2d(2), nn.Flatten(),
                          LogicLayer(5 * 4 * 3, 30, implementation="python", parametrization="inputwise"),
                          GroupSum(3, 1.0)).eval()
    x = (torch.rand(150, 2, 8, 7, generator=torch.Generator().manual_seed(seed)) > 0.5).float()
    with torch.no_grad():
        want = model(x).round().numpy().astype(np.int32)
    np.testing.assert_array_equal(simulate(lower(model), x.reshape(150, -1).numpy().astype(bool)), want)


def test_gumbel_st_samples_each_row_with_its_sigmoid_probability():
    w = torch.tensor([[2.0, -1.0, 0.0, 0.5]]).repeat(40000, 1)
    c = gumbel_st_coefficients(w, generator=torch.Generator().manual_seed(0))
    drawn = hard_ops_of_coefficients(c)
    freq = torch.stack([(drawn >> (3 - r)) & 1 for r in range(4)], -1).double().mean(0)
    assert torch.allclose(freq, torch.sigmoid(w[0].double()), atol=0.01)   # the binary Gumbel-max trick


def hard_ops_of_coefficients(c: torch.Tensor) -> torch.Tensor:
    """The op whose integer coefficients ``c [..., 4]`` are (each row must be one of the 16)."""
    match = (c.detach()[..., None, :] == torch.tensor(ops.RELAX, dtype=c.dtype)).all(-1)
    assert (match.sum(-1) == 1).all()
    return match.int().argmax(-1)


def test_hard_st_forward_is_the_eval_circuit_and_backward_the_sigmoid_gradient():
    torch.manual_seed(3)
    layer = LogicLayer(6, 40, implementation="python", parametrization="inputwise")
    twin = LogicLayer(6, 40, implementation="python", parametrization="inputwise")
    twin.load_state_dict(layer.state_dict())
    set_relaxation(layer, "hard-st")
    x = (torch.rand(32, 6) > 0.5).float()
    y = layer(x)
    layer.eval()
    assert torch.equal(y, layer(x))                 # training forward = the discrete circuit
    layer.train()
    g = torch.randn(40, 4)
    (layer.coefficients() * g).sum().backward()
    (twin.coefficients() * g).sum().backward()
    assert torch.allclose(layer.weights.grad, twin.weights.grad)
    set_relaxation(twin, "softmax", 0.5)            # temperature: sigmoid(w / T)
    torch.testing.assert_close(twin.coefficients(),
                               torch.sigmoid(twin.weights / 0.5) @ torch.tensor(INPUTWISE, dtype=torch.float32))


def test_checkpoint_and_config_keep_the_parametrization(tmp_path):
    torch.manual_seed(4)
    model = nn.Sequential(nn.Flatten(), LogicLayer(6, 12, parametrization="inputwise"), LogicLayer(12, 6),
                          GroupSum(3, 2.0))
    cfg = model_config(model)
    assert [spec["parametrization"] for spec in cfg["layers"]] == ["inputwise", "gates"]
    save_checkpoint(model, tmp_path / "m.pt")
    loaded = load_checkpoint(tmp_path / "m.pt", implementation="python")
    assert loaded[1].weights.shape == (12, 4) and loaded[2].weights.shape == (6, 16)
    x = (torch.rand(20, 6) > 0.5).float()
    torch.testing.assert_close(loaded(x), model.eval()(x))
    conv = build_model({"in_dim": 2 * 5 * 5, "flatten": False, "parametrization": "inputwise",
                        "layers": [{"type": "unflatten", "shape": [2, 5, 5]},
                                   {"type": "conv", "in_channels": 2, "out_channels": 3, "depth": 2},
                                   {"type": "flatten"}, 27], "k": 3})
    assert conv[1].weights.shape == (3, 3, 4) and conv[3].weights.shape == (27, 4)
    assert json.loads(json.dumps(model_config(conv)))["layers"][1]["parametrization"] == "inputwise"
    legacy = build_model({"in_dim": 4, "layers": [{"out_dim": 6}], "k": 3})   # configs before the key: gates
    assert legacy[1].weights.shape == (6, 16)


def test_unknown_parametrization_is_a_value_error():
    with pytest.raises(ValueError, match="parametrization must be one of"):
        LogicLayer(4, 4, parametrization="truth")
    with pytest.raises(ValueError, match="parametrization must be one of"):
        LogicConv2d(2, 3, parametrization="sigmoid")
    with pytest.raises(ValueError, match="parametrization must be one of"):
        build_model({"in_dim": 4, "layers": [4], "parametrization": "rows"})
