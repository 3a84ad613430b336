"""Issue 16's silent wrong answers, each held as a kind: non-canonical bool input on every target
and entry point, the eval gate independent of the input dtype, caches of compiled circuits that
cannot go stale, batch shapes (1-D sample, empty batch), honest equivalence results, portable
saved nets, and 'unique' wiring of every size. Expected values come from lgc.ir.simulate on the
canonical array or from the lowered circuit, never from a hard-coded result."""
from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from conftest import need, need_target
from hypothesis import given, settings
from hypothesis import strategies as st
from strategies import batches, circuits
from torch import nn

import lgc
from lgc.backends import cpu_c
from lgc.frontend import GroupSum, LogicLayer, cpu_kernel_unavailable
from lgc.frontend.conv import LogicConv2d
from lgc.frontend.connections import unique_connections
from lgc.frontend import lower as lower_model
from lgc.ir import Circuit, InputEncoder, PackedBits, pack_bits, random_layered_circuit, simulate
from lgc.ir.serialize import save as save_circuit
from lgc.passes import equivalent

EXECUTABLE = ("numpy", "c", "cpu-avx2", "cpu-avx512", "llvm", "cuda")


def _nets(circuit: Circuit, targets=EXECUTABLE) -> dict:
    """One net per target that runs here (the native kernels are built once per process)."""
    out = {}
    for t in targets:
        if lgc.backends.unavailable_reasons().get(t) is None:
            out[t] = lgc.backends.build(circuit, t, threads=2)
    return out


def _non_canonical(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The same bool array with every True byte replaced by a random nonzero byte (0x01..0xFF)."""
    raw = np.where(x, rng.integers(1, 256, size=x.shape), 0).astype(np.uint8)
    out = raw.view(bool)
    assert np.array_equal(out, x)  # numpy says it is the same array
    return out


# ---- 1. non-canonical bool input ------------------------------------------------------------

@pytest.mark.parametrize("target", EXECUTABLE)
def test_issue_example_non_canonical_bools(target):
    """The issue's case: a random 40 -> 200 -> 200 -> 60 circuit, 3 classes, 1000 rows."""
    need_target(target)
    c = random_layered_circuit(40, [200, 200, 60], num_classes=3, seed=1)
    x = np.random.default_rng(0).random((1000, 40)) < 0.5
    want = simulate(c, x)
    net = lgc.backends.build(c, target, threads=2)
    for bad in ((x.astype(np.uint8) * 255).view(bool), np.frombuffer((x * 255).astype(np.uint8).tobytes(),
                bool).reshape(x.shape), torch.from_numpy(x.astype(np.uint8) * 255).view(torch.bool)):
        assert np.array_equal(np.asarray(net(bad)), want)
    if target == "cuda" and torch.cuda.is_available():  # the runtime packs device rows itself
        gpu_bad = torch.from_numpy(x.astype(np.uint8) * 255).cuda().view(torch.bool)
        assert np.array_equal(net(gpu_bad).cpu().numpy(), want)
    if target == lgc.backends.resolve_target("cpu")[0]:  # the default target here
        assert np.array_equal(lgc.compile(c, opt_level=0)((x.astype(np.uint8) * 255).view(bool)), want)


@settings(max_examples=15)
@given(data=st.data())
def test_non_canonical_bools_every_target_and_width(data):
    """Widths across the scalar, tail and vector packing paths; any nonzero byte value."""
    c = data.draw(circuits(min_inputs=1, max_inputs=140, max_gates=150, max_outputs=24))
    x = data.draw(batches(c.num_inputs, max_n=300))
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1)))
    bad = _non_canonical(x, rng)
    one = x.astype(np.uint8)  # a single odd byte in an otherwise canonical batch
    if x.any():
        one.reshape(-1)[rng.choice(np.flatnonzero(x))] = rng.integers(2, 256)
    one = one.view(bool)
    want = simulate(c, x)
    assert np.array_equal(simulate(c, bad), want)
    assert np.array_equal(simulate(c, pack_bits(bad)), want)
    for target, net in _nets(c).items():
        assert np.array_equal(np.asarray(net(bad)), want), target
        assert np.array_equal(np.asarray(net(one)), want), target
        assert np.array_equal(np.asarray(net(torch.from_numpy(bad.view(np.uint8)).view(torch.bool))), want), target
        assert np.array_equal(np.asarray(net(pack_bits(bad))), want), target


def test_non_canonical_bools_through_compat_and_packbits():
    from lgc.compat.difflogic import CompiledLogicNet, PackBitsTensor
    torch.manual_seed(0)
    model = nn.Sequential(LogicLayer(40, 120, implementation="python"), LogicLayer(120, 60, implementation="python"),
                          GroupSum(3, 1.0)).eval()
    x = np.random.default_rng(1).random((300, 40)) < 0.5
    want = simulate(lgc.lower(model), x)
    bad_t = torch.from_numpy(x.astype(np.uint8) * 255).view(torch.bool)
    assert np.array_equal(model(PackBitsTensor(bad_t)).numpy(), want)
    assert np.array_equal(CompiledLogicNet(model).compile()(bad_t).numpy(), want)
    assert np.array_equal(CompiledLogicNet(model).compile()(bad_t.numpy()), want)
    with torch.no_grad():  # the eval-mode model reads a bool tensor the same way
        assert np.array_equal(torch.round(model(bad_t)).numpy().astype(np.int32), want)


# ---- 2. the eval gate does not depend on the input dtype --------------------------------------

def _implementations() -> list[str]:
    return ["python"] + ([] if cpu_kernel_unavailable() else ["cpu"])


@pytest.mark.parametrize("stored, given, tie", [(torch.float32, torch.bfloat16, 1e-4), (torch.float32, torch.float16, 1e-4),
                                                (torch.float64, torch.float32, 1e-12)])
@pytest.mark.parametrize("impl", ["python", "cpu", "auto"])
def test_eval_gate_is_argmax_of_stored_weights(stored, given, tie, impl):
    """Logits 0.5 (AND) and 0.5 + tie (XOR): XOR in the stored dtype, a tie (AND) once cast."""
    if impl == "cpu":
        need("cpu-kernel", cpu_kernel_unavailable())
        if given not in (torch.float32, torch.float64):
            pytest.skip("the cpu kernel takes float32/float64 input only (a ValueError otherwise)")
    layer = LogicLayer(2, 1, implementation=impl).to(stored)
    with torch.no_grad():
        layer.weights.zero_()
        layer.weights[0, 1] = 0.5        # AND
        layer.weights[0, 6] = 0.5 + tie  # XOR: the argmax as stored; equal to AND once cast to `given`
    assert layer.weights.to(given)[0, 1] == layer.weights.to(given)[0, 6]
    layer.set_indices([0], [1])
    layer.eval()
    x = torch.tensor([[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]])
    want = simulate(lgc.lower(nn.Sequential(layer)), x.numpy().astype(bool))[:, 0]
    assert want.tolist() == [0, 1, 1, 0]  # the lowered gate is XOR, the stored weights' argmax
    with torch.no_grad():
        assert layer(x.to(given)).float().reshape(-1).tolist() == want.tolist()


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_inputwise_eval_gate_ignores_input_dtype(dtype):
    layer = LogicLayer(2, 1, implementation="python", parametrization="inputwise")
    with torch.no_grad():  # 1e-30 > 0 in float32 (the rows are 1), 0 in float16/bfloat16 rounding
        layer.weights.copy_(torch.tensor([[1e-30, 1e-30, 1e-30, 1e-30]]))
    layer.set_indices([0], [1])
    layer.eval()
    x = torch.tensor([[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]])
    want = simulate(lgc.lower(nn.Sequential(layer)), x.numpy().astype(bool))[:, 0]
    with torch.no_grad():
        assert layer(x.to(dtype)).float().reshape(-1).tolist() == want.tolist()


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
@pytest.mark.parametrize("parametrization", ["gates", "inputwise"])
def test_difflogic_init_eval_under_low_precision_equals_circuit(dtype, parametrization):
    """Random N(0, 1) logits: ~0.3% of gates flipped under bf16 before; now none may."""
    torch.manual_seed(5)
    model = nn.Sequential(LogicLayer(40, 4000, parametrization=parametrization),
                          LogicLayer(4000, 600, parametrization=parametrization), GroupSum(3, 1.0)).eval()
    x = torch.rand(256, 40) < 0.5
    want = simulate(lgc.lower(model), x.numpy())
    for impl in ("python", "auto"):
        for m in model[:2]:
            m.implementation = impl
        with torch.no_grad():
            got = model(x.to(dtype)).float()
        assert np.array_equal(torch.round(got).numpy().astype(np.int32), want), impl


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_conv_eval_under_low_precision_equals_circuit(dtype):
    torch.manual_seed(2)
    layer = LogicConv2d(2, 8, 3, depth=3, implementation="python").eval()
    x = (torch.rand(64, 2, 7, 7) > 0.5).float()
    c = lower_model(nn.Sequential(layer), input_shape=(2, 7, 7))
    want = simulate(c, x.reshape(64, -1).numpy().astype(bool))
    with torch.no_grad():
        got = layer(x.to(dtype)).reshape(64, -1).float().numpy().astype(np.uint8)
    assert np.array_equal(got, want)


def test_difflogic_import_keeps_the_logits_dtype():
    """float64 logits that differ below float32 precision keep their argmax through the import."""
    class DiffLayer(nn.Module):  # what difflogic's LogicLayer looks like from outside
        def __init__(self):
            super().__init__()
            self.in_dim, self.out_dim = 2, 1
            w = torch.zeros(1, 16, dtype=torch.float64)
            w[0, 1], w[0, 6] = 0.5, 0.5 + 1e-12  # XOR wins in float64, ties (AND) in float32
            self.weights = nn.Parameter(w)
            self.indices = (torch.tensor([0]), torch.tensor([1]))

    imported = lgc.frontend.from_difflogic(nn.Sequential(DiffLayer()))
    assert imported[0].weights.dtype == torch.float64
    assert lgc.lower(imported).op.tolist() == [6]


def test_checkpoint_keeps_the_logits_dtype(tmp_path):
    from lgc.frontend.checkpoint import CHECKPOINT_FORMAT, CHECKPOINT_VERSION, load_checkpoint, model_config
    layer = LogicLayer(2, 1, implementation="python").to(torch.float64)
    with torch.no_grad():
        layer.weights.zero_()
        layer.weights[0, 1], layer.weights[0, 6] = 0.5, 0.5 + 1e-12
    model = nn.Sequential(layer)
    cfg = model_config(model)
    del cfg["dtype"]  # a config that does not name the dtype (hand-written, or older)
    path = tmp_path / "m.pt"
    torch.save({"format": CHECKPOINT_FORMAT, "version": CHECKPOINT_VERSION, "config": cfg,
                "state_dict": model.state_dict(), "extra": None}, path)
    again = load_checkpoint(path)
    assert lgc.lower(again).op.tolist() == lgc.lower(model).op.tolist() == [6]


# ---- 3. caches of compiled circuits cannot go stale -----------------------------------------

def test_packbits_net_follows_in_place_weight_changes():
    from lgc.compat.difflogic import PackBitsTensor
    torch.manual_seed(3)
    model = nn.Sequential(LogicLayer(30, 90, implementation="python"), LogicLayer(90, 60, implementation="python"),
                          GroupSum(3, 1.0)).eval()
    x = torch.rand(200, 30) < 0.5
    first = model(PackBitsTensor(x)).numpy()
    assert np.array_equal(first, simulate(lgc.lower(model), x.numpy()))
    for change in (lambda: model[0].weights.data.copy_(torch.randn_like(model[0].weights)),
                   lambda: model[1].index_a.data.copy_(torch.randint(0, 90, (60,))),
                   lambda: setattr(model[2], "k", 6)):
        change()
        got = model(PackBitsTensor(x)).numpy()
        assert np.array_equal(got, simulate(lgc.lower(model), x.numpy()))
    assert got.shape == (200, 6) and not np.array_equal(got[:, :3], first)


def test_conv_wiring_changed_in_place_is_seen():
    torch.manual_seed(4)
    layer = LogicConv2d(2, 4, 3, depth=2, implementation="python").eval()
    x = (torch.rand(32, 2, 6, 6) > 0.5).float()
    with torch.no_grad():
        layer(x)  # a forward pass before the change
        layer.leaf_dx.data.copy_((layer.leaf_dx + 1) % 3)
        layer.leaf_channel.data.copy_(1 - layer.leaf_channel)
        got = layer(x).reshape(32, -1).numpy().astype(np.uint8)
    c = lower_model(nn.Sequential(layer), input_shape=(2, 6, 6))
    assert np.array_equal(got, simulate(c, x.reshape(32, -1).numpy().astype(bool)))


def test_compiled_logic_net_compiles_the_model_as_it_is_at_compile():
    from lgc.compat.difflogic import CompiledLogicNet
    torch.manual_seed(6)
    model = nn.Sequential(LogicLayer(20, 60, implementation="python"), GroupSum(3, 1.0)).eval()
    net = CompiledLogicNet(model)
    with torch.no_grad():
        model[0].weights.data.copy_(torch.randn_like(model[0].weights))
    x = np.random.default_rng(0).random((100, 20)) < 0.5
    assert np.array_equal(net.compile()(x), simulate(lgc.lower(model), x))


# ---- 4. batch shapes: one sample is refused by name, an empty batch is empty ------------------

def _encoded(c: Circuit) -> Circuit:
    rng = np.random.default_rng(0)
    return c.replace(input_encoder=InputEncoder(rng.integers(0, 16, size=c.num_inputs), rng.normal(size=c.num_inputs), 16))


@pytest.mark.parametrize("head", [True, False])
def test_one_sample_refused_and_empty_batch_empty(head):
    c = random_layered_circuit(64, [96, 60], num_classes=3 if head else None, seed=2)
    enc = _encoded(c)
    width, dtype = (3, np.int32) if head else (60, np.uint8)
    runners = {"simulate": lambda circ: (lambda x: simulate(circ, x))}
    for circ in (c, enc):
        calls = {"simulate": runners["simulate"](circ), **_nets(circ)}
        empties = [np.zeros((0, 64), bool), torch.zeros((0, 64), dtype=torch.bool),
                   PackedBits(np.zeros((64, 0), np.uint64), 0)]
        ones = [np.zeros(64, bool), torch.zeros(64, dtype=torch.bool)]
        if circ.input_encoder is not None:
            empties += [np.zeros((0, 16)), np.zeros((0, 4, 4), np.float32), torch.zeros((0, 16))]
            ones += [np.zeros(16), np.zeros((4, 4)), torch.zeros(16)]
        else:
            empties += [np.zeros((0, 64), np.uint8), torch.zeros((0, 64))]
            ones += [np.zeros(64, np.uint8)]
        for name, run in calls.items():
            if name == "cuda" and torch.cuda.is_available():  # device tensors take cuda's own path
                empties = empties + [t.cuda() for t in empties if isinstance(t, torch.Tensor)]
                ones = ones + [t.cuda() for t in ones if isinstance(t, torch.Tensor)]
            for x in empties:
                out = run(x)
                out = out.cpu().numpy() if isinstance(out, torch.Tensor) else np.asarray(out)
                assert out.shape == (0, width) and out.dtype == dtype, (name, type(x))
            for x in ones:
                with pytest.raises(ValueError, match="one sample.*x\\[None\\]"):
                    run(x)
            row = np.zeros((1, 64), bool)
            assert np.array_equal(np.asarray(run(row)), simulate(circ, row)), name


# ---- 5. honest equivalence, portable saved nets ------------------------------------------------

def test_simulation_never_claims_equality_it_did_not_prove():
    """AND of 30 inputs vs FALSE differ on one row in 2^30: random vectors miss it."""
    n = 30
    pattern = np.random.default_rng(3).random(n) < 0.5   # the one row where the circuits differ
    op = [3 if p else 12 for p in pattern]               # literal i: x_i or NOT x_i
    a, b = list(range(n)), list(range(n))
    op.append(1), a.append(n), b.append(n + 1)           # AND of all literals
    for i in range(2, n):
        op.append(1), a.append(n + len(op) - 2), b.append(n + i)
    c1 = Circuit(n, op=op, a=a, b=b, outputs=[n + len(op) - 1])
    c2 = Circuit(n, op=[0], a=[0], b=[0], outputs=[n])
    assert simulate(c1, pattern[None])[0, 0] == 1 and simulate(c2, pattern[None])[0, 0] == 0
    sim = equivalent(c1, c2, method="simulate")
    assert sim.equal is None and not sim and not sim.proven and sim.counterexample is None
    assert "not a proof" in repr(sim)
    if lgc.passes.sat_solver_available() is None:
        res = equivalent(c1, c2)
        assert res.equal is False and res.proven and np.array_equal(res.counterexample, pattern)


def test_saved_net_loads_on_a_host_without_its_target(tmp_path, monkeypatch):
    c = random_layered_circuit(30, [64, 40], num_classes=4, seed=2)
    path = tmp_path / "net.lgc"
    save_circuit(c, path, meta={"compiled_target": "cpu-avx512"})
    monkeypatch.setattr(cpu_c, "available", lambda t, _orig=cpu_c.available: "this CPU lacks avx512f"
                        if t == "cpu-avx512" else _orig(t))
    x = np.random.default_rng(0).random((100, 30)) < 0.5
    with pytest.warns(RuntimeWarning, match="cpu-avx512.*not available here"):
        net = lgc.load(path)
    assert net.target != "cpu-avx512" and np.array_equal(net(x), simulate(c, x))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert lgc.load(path, target="numpy").target == "numpy"   # asked for: no warning
    with pytest.raises(ValueError, match="cpu-avx512.*not available"):
        lgc.load(path, target="cpu-avx512")                        # asked for: never a substitute
    with warnings.catch_warnings():  # reading the circuit (inspect, export, compile FILE) builds nothing
        warnings.simplefilter("error")
        assert lgc.optimize(str(path), level=0) == c
    save_circuit(c, path, meta={"compiled_target": "numpy"})
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert lgc.load(path).target == "numpy"                    # available: as saved, silently


# ---- 6. 'unique' wiring of every size ----------------------------------------------------------

def test_unique_connections_every_size():
    for in_dim in range(2, 14):
        most = in_dim * (in_dim - 1) // 2
        for out_dim in range(1, most + 1):
            a, b = unique_connections(in_dim, out_dim)
            a, b = a.tolist(), b.tolist()
            assert len(a) == len(b) == out_dim
            assert all(x != y and 0 <= x < in_dim and 0 <= y < in_dim for x, y in zip(a, b))
            assert len({frozenset(p) for p in zip(a, b)}) == out_dim, (in_dim, out_dim)
            if 2 * out_dim >= in_dim:
                assert set(a) | set(b) == set(range(in_dim)), (in_dim, out_dim)
        with pytest.raises(ValueError, match="distinct pairs"):
            unique_connections(in_dim, most + 1)
    layer = LogicLayer(3, 3, connections="unique")
    assert {frozenset(p) for p in zip(layer.index_a.tolist(), layer.index_b.tolist())} == \
        {frozenset((0, 1)), frozenset((1, 2)), frozenset((0, 2))}
