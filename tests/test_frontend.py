"""Frontend: modules, relaxation vs difflogic's 16-op form, lowering (bit-exact vs the oracle),
difflogic import, checkpoints and errors. Uses the python implementation (no native build);
the fused kernels are tested in test_frontend_kernels.py."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, strategies as st
from torch import nn

import lgc
from lgc.frontend import (Binarize, GroupSum, LogicLayer, build_model, from_difflogic, load_checkpoint, lower,
                          model_config, save_checkpoint, set_relaxation)
from lgc.frontend.connections import random_connections, unique_connections
from lgc.ir import ops, simulate


def difflogic_bin_op(a: torch.Tensor, b: torch.Tensor, i: int) -> torch.Tensor:
    """difflogic's real-valued op i (functional.py), written out independently of lgc's tables."""
    return [lambda: torch.zeros_like(a), lambda: a * b, lambda: a - a * b, lambda: a, lambda: b - a * b,
            lambda: b, lambda: a + b - 2 * a * b, lambda: a + b - a * b, lambda: 1 - (a + b - a * b),
            lambda: 1 - (a + b - 2 * a * b), lambda: 1 - b, lambda: 1 - b + a * b, lambda: 1 - a,
            lambda: 1 - a + a * b, lambda: 1 - a * b, lambda: torch.ones_like(a)][i]()


def difflogic_forward(x: torch.Tensor, weights: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    p, q = x[..., a], x[..., b]
    s = torch.softmax(weights, dim=-1)
    return sum(s[..., i] * difflogic_bin_op(p, q, i) for i in range(16))


def random_model(rng: np.random.Generator, in_dim: int, widths: list[int], k: int | None, tau: float,
                 connections: str = "random", ties: bool = False, binarize=None, implementation: str = "python"):
    torch.manual_seed(int(rng.integers(0, 2**31)))
    mods: list[nn.Module] = [nn.Flatten()]
    width = in_dim
    if binarize is not None:
        mods.append(binarize)
        width = in_dim * binarize.num_thresholds
    for w in widths:
        try:
            layer = LogicLayer(width, w, connections=connections, implementation=implementation)
        except ValueError:  # difflogic's 'unique' cannot draw many gates from few inputs
            layer = LogicLayer(width, w, connections="random", implementation=implementation)
        if ties:  # small integer logits: many ties, which must go to the lowest op index
            with torch.no_grad():
                layer.weights.copy_(torch.from_numpy(rng.integers(-1, 2, size=(w, 16))).float())
        mods.append(layer)
        width = w
    if k is not None:
        mods.append(GroupSum(k, tau))
    return nn.Sequential(*mods)


# -- relaxation ---------------------------------------------------------------------------------
def test_relaxation_equals_difflogic_sixteen_ops():
    torch.manual_seed(0)
    layer = LogicLayer(20, 50, implementation="python").double()
    x = torch.rand(9, 20, dtype=torch.float64)
    want = difflogic_forward(x, layer.weights, *layer.indices)
    torch.testing.assert_close(layer(x), want, rtol=1e-12, atol=1e-12)


def test_each_op_relaxes_to_its_truth_table_on_bits():
    for op in range(16):
        for p in (0.0, 1.0):
            for q in (0.0, 1.0):
                c0, c1, c2, c3 = ops.RELAX[op]
                assert c0 + c1 * p + c2 * q + c3 * p * q == ops.TRUTH[op, int(p), int(q)]
                assert float(difflogic_bin_op(torch.tensor(p), torch.tensor(q), op)) == ops.TRUTH[op, int(p), int(q)]


def test_eval_is_argmax_gate_lowest_index_on_ties():
    layer = LogicLayer(2, 16, implementation="python")
    with torch.no_grad():
        layer.weights.zero_()
        for i in range(16):
            layer.weights[i, i] = 1.0
            layer.weights[i, (i + 5) % 16] = 1.0  # a tie between i and i+5: the lower index wins
    layer.set_indices(torch.zeros(16, dtype=torch.int64), torch.ones(16, dtype=torch.int64))
    layer.eval()
    x = torch.tensor([[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]])
    y = layer(x)
    for i in range(16):
        op = min(i, (i + 5) % 16)
        assert y[:, i].tolist() == [float(ops.TRUTH[op, int(p), int(q)]) for p, q in x.tolist()]


def test_residual_init_puts_most_mass_on_pass_through():
    layer = LogicLayer(10, 30, residual_init=True, implementation="python")
    probs = torch.softmax(layer.weights, -1)
    assert (probs.argmax(-1) == ops.A).all() and (probs[:, ops.A] > 0.9).all()
    x = torch.rand(4, 10)
    # 1 - e^5 / (e^5 + 15) < 0.092 of the mass is elsewhere, and every gate's output lies in [0, 1]
    assert (layer(x) - x[:, layer.index_a]).abs().max() < 0.092
    assert torch.equal(LogicLayer(10, 30, residual_init=2.0).weights[:, ops.A], torch.full((30,), 2.0))


def test_grad_factor_scales_input_gradient_only():
    torch.manual_seed(1)
    x = torch.rand(5, 12, requires_grad=True)
    base = LogicLayer(12, 20, implementation="python")
    scaled = LogicLayer(12, 20, grad_factor=2.5, implementation="python")
    scaled.load_state_dict(base.state_dict())
    grads = []
    for layer in (base, scaled):
        x.grad = None
        layer(x).pow(2).sum().backward()
        grads.append((x.grad.clone(), layer.weights.grad.clone()))
    torch.testing.assert_close(grads[1][0], 2.5 * grads[0][0])
    torch.testing.assert_close(grads[1][1], grads[0][1])


def test_connections_like_difflogic():
    a, b = random_connections(10, 40)
    counts = torch.bincount(torch.cat([a, b]), minlength=10)
    assert counts.min() == counts.max() == 8  # every input used equally often
    a, b = unique_connections(30, 40)
    pairs = set(zip(a.tolist(), b.tolist()))
    assert len(pairs) == 40 and all(x != y for x, y in pairs)
    assert set(a.tolist()) | set(b.tolist()) == set(range(30))
    layer = LogicLayer(784, 8, connections="unique")
    assert layer.index_a.dtype == torch.int64 and layer.index_a.max() < 784


def test_indices_are_buffers_in_state_dict():
    layer = LogicLayer(8, 6)
    sd = layer.state_dict()
    assert set(sd) == {"weights", "index_a", "index_b"}
    other = LogicLayer(8, 6)
    other.load_state_dict(sd)
    assert torch.equal(other.index_a, layer.index_a) and torch.equal(other.index_b, layer.index_b)
    assert {n for n, _ in layer.named_buffers()} == {"index_a", "index_b"}  # so .to(device) moves them
    moved = layer.to(torch.float64)
    assert moved.index_a.dtype == torch.int64 and moved.weights.dtype == torch.float64


def test_group_sum():
    g = GroupSum(3, tau=2.0)
    x = torch.arange(12.0).reshape(2, 6)
    assert g(x).tolist() == [[0.5, 2.5, 4.5], [6.5, 8.5, 10.5]]
    feature_major = x.t().contiguous().t()  # the layout a kernel layer returns
    assert g(feature_major).tolist() == g(x).tolist()
    with pytest.raises(ValueError, match="divisible by 4"):
        GroupSum(4)(x)


def test_binarize_thresholds_and_passthrough():
    b = Binarize([0.25, 0.75])
    x = torch.tensor([[[0.1, 0.5], [0.8, 0.25]]])  # [1, 2, 2] -> 4 features
    y = b(x)
    assert y.tolist() == [[0, 1, 1, 0, 0, 0, 1, 0]]  # plane per threshold: t * F + f
    g = Binarize(0.5, train_passthrough=True)
    torch.testing.assert_close(g(x), x.flatten(1))
    assert g.eval()(x).tolist() == [[0, 0, 1, 0]]
    per = Binarize(torch.tensor([[0.0, 1.0, 2.0]]))
    assert per(torch.tensor([[0.5, 0.5, 2.5]])).tolist() == [[1, 0, 1]]
    with pytest.raises(ValueError, match="expects 3 features"):
        per(torch.zeros(2, 4))
    with pytest.raises(ValueError, match="one threshold"):
        Binarize([0.2, 0.4], train_passthrough=True)


# -- lowering -------------------------------------------------------------------------------
def assert_lowered_equal(model: nn.Module, x: np.ndarray) -> None:
    circuit = lower(model)
    tau = model[-1].tau if isinstance(model[-1], GroupSum) else None
    was_training = model.training
    got = simulate(circuit, x)
    with torch.no_grad():
        y = model.eval()(torch.from_numpy(np.asarray(x, dtype=np.float32)))
    model.train(was_training)
    if tau is None:
        np.testing.assert_array_equal(got, y.numpy().astype(np.uint8))
    else:
        np.testing.assert_array_equal(got, torch.round(y * tau).to(torch.int32).numpy())


@given(seed=st.integers(0, 2**32 - 1), in_dim=st.integers(1, 12), depth=st.integers(1, 4),
       k=st.sampled_from([None, 1, 2, 3]), tau=st.sampled_from([1.0, 3.0, 10.0]), ties=st.booleans(),
       connections=st.sampled_from(["random", "unique"]), n=st.sampled_from([1, 2, 63, 64, 65, 100]))
def test_lower_matches_eval_model_bit_exact(seed, in_dim, depth, k, tau, ties, connections, n):
    rng = np.random.default_rng(seed)
    widths = [int(w) * (k or 1) for w in rng.integers(1, 12, size=depth)]
    model = random_model(rng, in_dim, widths, k, tau, connections, ties)
    model.train(bool(rng.integers(0, 2)))  # lower must use eval semantics whatever the mode
    assert_lowered_equal(model, rng.random((n, in_dim)) < 0.5)


def test_lowered_structure():
    rng = np.random.default_rng(0)
    model = random_model(rng, 6, [10, 8], 2, 4.0)
    c = lower(model)
    assert (c.num_inputs, c.num_gates, c.num_outputs) == (6, 18, 8)
    assert c.layers.tolist() == [0, 10, 18] and c.meta["layer_sizes"] == [10, 8]
    assert c.head.k == 2 and c.head.tau == 4.0
    l0, l1 = model[1], model[2]
    assert c.op[:10].tolist() == l0.weights.argmax(-1).tolist()
    assert c.a[:10].tolist() == l0.index_a.tolist()
    assert c.a[10:].tolist() == (l1.index_a + 6).tolist() and c.b[10:].tolist() == (l1.index_b + 6).tolist()
    assert c.outputs.tolist() == list(range(16, 24))
    assert lgc.lower(model) == c  # the front door dispatches here


def test_lower_one_layer_batch_one_and_no_head():
    rng = np.random.default_rng(3)
    model = nn.Sequential(LogicLayer(5, 7, implementation="python"))
    assert_lowered_equal(model, rng.random((1, 5)) < 0.5)
    assert lower(model).head is None
    single = LogicLayer(4, 2, implementation="python")
    assert lower(single).num_gates == 2


@given(seed=st.integers(0, 2**32 - 1), thresholds=st.sampled_from([[0.5], [0.1, 0.5], [0.25, 0.5, 0.75]]),
       passthrough=st.booleans(), n=st.sampled_from([1, 7, 64, 65]))
def test_lower_binarize_into_input_encoder(seed, thresholds, passthrough, n):
    rng = np.random.default_rng(seed)
    features = 9
    binarize = Binarize(thresholds, train_passthrough=passthrough and len(thresholds) == 1)
    model = random_model(rng, features, [12, 6], 3, 2.0, binarize=binarize)
    c = lower(model)
    assert c.input_encoder is not None and c.input_encoder.num_features == features
    x = rng.random((n, 3, 3)).astype(np.float32)
    x[rng.random(x.shape) < 0.3] = np.float32(thresholds[0])  # values equal to a threshold: bit 0
    x[rng.random(x.shape) < 0.1] = np.float32(0.1)
    got = simulate(c, x)
    with torch.no_grad():
        y = model.eval()(torch.from_numpy(x))
    np.testing.assert_array_equal(got, torch.round(y * 2.0).to(torch.int32).numpy())


def test_lower_errors_name_the_problem():
    with pytest.raises(ValueError, match="ReLU"):
        lower(nn.Sequential(LogicLayer(4, 4), nn.ReLU(), GroupSum(2)))
    with pytest.raises(ValueError, match="cannot be split into GroupSum\\(k=3\\)"):
        lower(nn.Sequential(LogicLayer(4, 4), GroupSum(3)))
    with pytest.raises(ValueError, match="in_dim 5"):
        lower(nn.Sequential(LogicLayer(4, 4), LogicLayer(5, 4)))
    with pytest.raises(ValueError, match="last module"):
        lower(nn.Sequential(LogicLayer(4, 4), GroupSum(2), LogicLayer(4, 4)))
    with pytest.raises(ValueError, match="no LogicLayer"):
        lower(nn.Sequential(nn.Flatten()))
    with pytest.raises(TypeError):
        lower("not a model")


# -- difflogic import ---------------------------------------------------------------------------
class FakeDifflogicLayer(nn.Module):
    """The attributes of difflogic.LogicLayer that lgc reads (indices as plain attributes)."""

    def __init__(self, in_dim, out_dim):
        super().__init__()
        self.in_dim, self.out_dim = in_dim, out_dim
        self.weights = nn.Parameter(torch.randn(out_dim, 16))
        self.indices = (torch.randint(0, in_dim, (out_dim,)), torch.randint(0, in_dim, (out_dim,)))
        self.grad_factor = 1.0

    def forward(self, x):
        if self.training:
            return difflogic_forward(x, self.weights, *self.indices)
        hard = torch.nn.functional.one_hot(self.weights.argmax(-1), 16).float() * 1e4
        return difflogic_forward(x, hard, *self.indices)


class FakeDifflogicGroupSum(nn.Module):
    def __init__(self, k, tau):
        super().__init__()
        self.k, self.tau = k, tau

    def forward(self, x):
        return x.reshape(*x.shape[:-1], self.k, x.shape[-1] // self.k).sum(-1) / self.tau


def test_from_difflogic_equal_model_and_circuit():
    torch.manual_seed(5)
    theirs = nn.Sequential(nn.Flatten(), FakeDifflogicLayer(16, 24), FakeDifflogicLayer(24, 12),
                           FakeDifflogicGroupSum(3, 4.0))
    ours = from_difflogic(theirs, implementation="python")
    assert isinstance(ours[1], LogicLayer) and isinstance(ours[3], GroupSum)
    x = torch.rand(10, 4, 4)
    torch.testing.assert_close(ours(x), theirs(x), rtol=1e-5, atol=1e-6)
    bits = (torch.rand(33, 16) < 0.5).float()
    with torch.no_grad():
        want = theirs.eval()(bits)
    np.testing.assert_array_equal(simulate(lower(ours), bits.numpy() > 0.5),
                                  torch.round(want * 4.0).to(torch.int32).numpy())
    with pytest.raises(ValueError, match="Dropout"):
        from_difflogic(nn.Sequential(FakeDifflogicLayer(4, 4), nn.Dropout()))


# -- configs and checkpoints ----------------------------------------------------------------
def test_build_model_from_config_schema():
    cfg = {"in_dim": 12, "binarize": {"thresholds": [0.3, 0.6]}, "layers": [30, {"out_dim": 20, "connections": "unique"}],
           "k": 4, "tau": 5.0, "residual_init": True, "implementation": "python"}
    model = build_model(cfg)
    assert [type(m).__name__ for m in model] == ["Flatten", "Binarize", "LogicLayer", "LogicLayer", "GroupSum"]
    assert model[2].in_dim == 24 and model[3].connections == "unique" and model[2].residual_init is True
    assert model(torch.rand(3, 12)).shape == (3, 4)
    explicit = model_config(model)
    again = build_model(explicit)
    assert model_config(again) == explicit
    with pytest.raises(ValueError, match="unknown config keys"):
        build_model({"in_dim": 3, "layers": [4], "depth": 2})
    with pytest.raises(ValueError, match="k=3"):
        build_model({"in_dim": 3, "layers": [4], "k": 3})


def test_checkpoint_round_trip(tmp_path):
    rng = np.random.default_rng(7)
    model = random_model(rng, 10, [16, 8], 4, 2.0, binarize=Binarize(0.5, train_passthrough=True))
    path = tmp_path / "m.pt"
    save_checkpoint(model, path, extra={"epoch": 3, "acc": 0.5})
    loaded, extra = load_checkpoint(path, with_extra=True, implementation="python")
    assert extra == {"epoch": 3, "acc": 0.5} and not loaded.training
    for k, v in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[k], v), k
    x = torch.rand(5, 10)
    model.eval()
    torch.testing.assert_close(loaded(x), model(x))
    assert lower(loaded) == lower(model)
    model.train(), loaded.train()
    torch.testing.assert_close(loaded(x), model(x))
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="not a readable lgc checkpoint"):
        load_checkpoint(tmp_path / "junk.pt")
    torch.save({"something": 1}, tmp_path / "other.pt")
    with pytest.raises(ValueError, match="not an lgc checkpoint"):
        load_checkpoint(tmp_path / "other.pt")


def test_layer_argument_errors():
    with pytest.raises(ValueError, match="implementation"):
        LogicLayer(4, 4, implementation="fast")
    with pytest.raises(ValueError, match="connections"):
        LogicLayer(4, 4, connections="dense")
    with pytest.raises(ValueError, match=r"expects input \[..., 4\]"):
        LogicLayer(4, 4)(torch.zeros(2, 5))
    with pytest.raises(ValueError, match="must lie in 0..3"):
        LogicLayer(4, 2).set_indices([0, 4], [1, 2])
    bad = LogicLayer(4, 2).state_dict()
    bad["index_a"] = torch.tensor([0, 9])
    with pytest.raises(ValueError, match="must lie in 0..3"):
        LogicLayer(4, 2).load_state_dict(bad)


# -- training relaxations -----------------------------------------------------------------------
def _sampled_ops(c: torch.Tensor) -> torch.Tensor:
    """The op whose integer coefficients ``c [..., 4]`` are (every row must be one of the 16)."""
    relax = torch.tensor(ops.RELAX, dtype=c.dtype)
    match = (c.detach()[..., None, :] == relax).all(-1)
    assert (match.sum(-1) == 1).all()
    return match.int().argmax(-1)


def test_gumbel_st_samples_gates_by_softmax_probabilities():
    from lgc.frontend.relax import gumbel_st_coefficients
    w = torch.tensor([[2.0, 1.0, 0.0, -1.0] + [-30.0] * 12]).repeat(40000, 1)
    drawn = _sampled_ops(gumbel_st_coefficients(w, generator=torch.Generator().manual_seed(0)))
    freq = torch.bincount(drawn, minlength=16).double() / len(w)
    assert torch.allclose(freq, torch.softmax(w[0].double(), 0), atol=0.01)   # the Gumbel-max trick


def test_gumbel_st_gradient_is_the_gumbel_softmax_gradient():
    from lgc.frontend.relax import gumbel_st_coefficients, relax_matrix
    w = torch.randn(50, 16, dtype=torch.float64, requires_grad=True)
    g = torch.randn(50, 4, dtype=torch.float64)
    (gumbel_st_coefficients(w, 0.5, torch.Generator().manual_seed(3)) * g).sum().backward()
    u = torch.rand(w.shape, dtype=w.dtype, generator=torch.Generator().manual_seed(3)).clamp(1e-10, 1 - 1e-7)
    w2 = w.detach().clone().requires_grad_(True)
    soft = torch.softmax((w2 - torch.log(-torch.log(u))) / 0.5, -1) @ relax_matrix(w2)
    (soft * g).sum().backward()
    assert torch.allclose(w.grad, w2.grad)


def test_gumbel_st_training_forward_runs_hard_gates():
    torch.manual_seed(0)
    layer = LogicLayer(6, 40, implementation="python")
    set_relaxation(nn.Sequential(layer), "gumbel-st")
    x = torch.from_numpy(np.indices((2,) * 6).reshape(6, -1).T.copy()).float()   # all 64 inputs
    y = layer(x)
    a, b = layer.index_a, layer.index_b
    for g in range(40):   # each gate is one of the 16 gates, the same one for every sample of the step
        p, q = x[:, a[g]].long(), x[:, b[g]].long()
        assert any(torch.equal(y[:, g], torch.from_numpy(ops.TRUTH[o]).float()[p, q]) for o in range(16))
    layer.eval()
    assert torch.equal(layer(x), lower_eval(layer, x))


def lower_eval(layer: LogicLayer, x: torch.Tensor) -> torch.Tensor:
    """Eval-mode output computed from the argmax ops' truth tables."""
    op = layer.weights.argmax(-1)
    t = torch.from_numpy(ops.TRUTH).float()
    return t[op, x[:, layer.index_a].long(), x[:, layer.index_b].long()]


def test_set_relaxation_reaches_conv_layers_and_checks_arguments():
    from lgc.frontend import LogicConv2d
    model = nn.Sequential(LogicConv2d(2, 3, 3, depth=2, implementation="python"), nn.Flatten(), LogicLayer(27, 10))
    assert set_relaxation(model, "gumbel-st", 2.0) is model
    assert model[0].relaxation == model[2].relaxation == ("gumbel-st", 2.0)
    out = model((torch.rand(5, 2, 5, 5) > 0.5).float())
    assert set(out.unique().tolist()) <= {0.0, 1.0}
    out.sum().backward()
    assert model[0].weights.grad.abs().sum() > 0 and model[2].weights.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="relaxation must be one of"):
        set_relaxation(model, "gumbel")
    with pytest.raises(ValueError, match="temperature must be > 0"):
        set_relaxation(model, "gumbel-st", 0.0)


def test_hard_st_forward_is_the_eval_circuit_and_backward_the_softmax_gradient():
    torch.manual_seed(1)
    layer = LogicLayer(6, 40, implementation="python")
    twin = LogicLayer(6, 40, implementation="python")
    twin.load_state_dict(layer.state_dict())
    set_relaxation(layer, "hard-st")
    x = (torch.rand(32, 6) > 0.5).float()
    y = layer(x)
    assert torch.equal(y, lower_eval(layer, x))           # training forward = the discrete circuit
    g = torch.randn_like(y)
    (layer.coefficients() * g[:4, :, None].mean(0)).sum().backward()
    (twin.coefficients() * g[:4, :, None].mean(0)).sum().backward()   # softmax coefficients of the same logits
    assert torch.allclose(layer.weights.grad, twin.weights.grad)


def test_straight_through_gate_is_chosen_from_the_stored_logits():
    """bfloat16 input, float32 logits that tie only after a cast to bfloat16: the hard-st training
    forward runs the gate of the stored logits (the eval circuit), never the argmax of cast logits
    (gumbel-st draws its gate by the same code path, from the stored logits plus noise)."""
    torch.manual_seed(3)
    layer = LogicLayer(6, 40, implementation="python")
    with torch.no_grad():
        layer.weights.zero_()
        layer.weights[:, 3] = 1.0          # a (pass-through) at index 3 ...
        layer.weights[:, 6] = 1.0 + 2e-3   # ... loses to XOR at index 6, but bfloat16 rounds both to 1.0
    assert torch.equal(layer.weights.bfloat16()[:, 3], layer.weights.bfloat16()[:, 6])
    set_relaxation(layer, "hard-st")
    x = (torch.rand(64, 6) > 0.5).bfloat16()
    y = layer(x)
    assert y.dtype == torch.bfloat16
    assert torch.equal(y, lower_eval(layer, x.float()).bfloat16())
    assert torch.equal(y, (x[:, layer.index_a] != x[:, layer.index_b]).bfloat16())   # XOR, not a
    y.float().sum().backward()
    assert layer.weights.grad is not None and torch.isfinite(layer.weights.grad).all()


def test_softmax_temperature_sharpens_the_mixture_towards_the_argmax_gate():
    from lgc.frontend.relax import relax_matrix
    torch.manual_seed(2)
    layer = LogicLayer(8, 30)   # default implementation: the fused kernel's softmax path is bypassed for T != 1
    x = torch.rand(16, 8)
    set_relaxation(layer, "softmax", 0.25)
    expected = torch.softmax(layer.weights / 0.25, -1) @ relax_matrix(layer.weights)
    assert torch.allclose(layer.coefficients(), expected)
    p, q = x[:, layer.index_a], x[:, layer.index_b]
    c = expected.detach()
    assert torch.allclose(layer(x), c[:, 0] + c[:, 1] * p + c[:, 2] * q + c[:, 3] * p * q, atol=1e-6)
    set_relaxation(layer, "softmax", 1e-4)   # nearly hard: the train-mode output is the eval-mode circuit's
    xb = (x > 0.5).float()
    assert torch.allclose(layer(xb), lower_eval(layer, xb), atol=1e-4)
