"""The fused training step (``lgc.frontend.fused_step``: forward, cross-entropy, backward and Adam in
one extension call) against the generic step it stands for: the same parameters, moments and losses
to float rounding, the same bits at any thread count, the generic step wherever the fused one does
not apply, clear errors for bad input, and ``lgc train`` taking it."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from conftest import need
from lgc.frontend import Binarize, GroupSum, LogicLayer, LogicSequential, kernels, optim
from lgc.frontend.fused_step import FusedTrainStep


@pytest.fixture(scope="module", autouse=True)
def cpu_kernel():
    need("cpu-kernel", kernels.cpu_kernel_unavailable())


@pytest.fixture
def threads():
    before = kernels.get_num_threads()
    yield kernels.set_num_threads
    kernels.set_num_threads(before)


def model(dtype=torch.float64, dims=(48, 300, 200, 100), k=5, tau=3.0, seed=0, grad_factor=1.0, binarize=False):
    torch.manual_seed(seed)
    layers = [LogicLayer(i, o, implementation="cpu", grad_factor=grad_factor) for i, o in zip(dims, dims[1:])]
    prefix = [nn.Flatten()] + ([Binarize(0.5, num_features=dims[0])] if binarize else [])
    return LogicSequential(*prefix, *layers, GroupSum(k, tau)).to(dtype)


def batches(n, batch, dtype, k=5, in_shape=(6, 8), seed=1):
    g = torch.Generator().manual_seed(seed)
    return [(torch.rand(batch, *in_shape, generator=g, dtype=dtype), torch.randint(0, k, (batch,), generator=g))
            for _ in range(n)]


def generic_step(m, opt, x, y):
    opt.zero_grad(set_to_none=True)
    loss = F.cross_entropy(m(x), y)
    loss.backward()
    opt.step()
    return loss.detach()


def state_of(m, opt):
    """Every parameter and Adam moment of ``m``, and the step counts."""
    out = [p.detach().clone() for p in m.parameters()]
    for p in m.parameters():
        s = opt.state[p]
        out += [s["exp_avg"].clone(), s["exp_avg_sq"].clone(), s["step"].clone()]
    return out


@pytest.mark.parametrize("dtype,tol", [(torch.float64, 1e-10), (torch.float32, 2e-2)])
@pytest.mark.parametrize("batch", [1, 7, 100, 257])
@pytest.mark.parametrize("grad_factor", [1.0, 1.5])
def test_fused_step_is_the_generic_step(dtype, tol, batch, grad_factor, threads):
    """Parameters (within tol x lr: float32 Adam divides by sqrt(v) + eps, so a gradient near zero
    moves its update by more than its own rounding), moments and losses after 4 steps."""
    threads(2)
    lr = 0.05
    ref, fused = model(dtype, grad_factor=grad_factor), model(dtype, grad_factor=grad_factor)
    ref_opt, fused_opt = optim.Adam(ref.parameters(), lr=lr), optim.Adam(fused.parameters(), lr=lr)
    step = FusedTrainStep(fused, fused_opt)
    for x, y in batches(4, batch, dtype):
        assert step.unsupported(x, y) is None
        expect = generic_step(ref, ref_opt, x, y)
        got = step(x, y)
        assert got.dtype == dtype and got.shape == ()
        assert got.item() == pytest.approx(expect.item(), rel=1e-6 if dtype == torch.float32 else 1e-13)
    assert step.fused_steps == 4
    for p, q in zip(ref.parameters(), fused.parameters()):
        assert q.grad is None  # the fused step keeps no gradients
        assert (p - q).abs().max().item() <= tol * lr
        for key in ("exp_avg", "exp_avg_sq"):
            a, b = ref_opt.state[p][key], fused_opt.state[q][key]
            assert (a - b).abs().max().item() <= max(1e-12, tol * 1e-2) * a.abs().max().item()
        assert float(fused_opt.state[q]["step"]) == 4.0


@pytest.fixture(params=["spans", "whole batch"])
def cache(request):
    """Above batch 192 the fused step runs spans of 64 columns, one thread each, while two fit in the
    last-level cache, else the whole batch with the per-layer gather: both, by telling the extension
    the cache's size."""
    if kernels.loaded_cpu_backend() is None:
        kernels.resolve("cpu", torch.zeros(1))
    module = kernels.loaded_cpu_backend().module
    previous = module.set_train_cache_bytes(1 if request.param == "whole batch" else 0)
    yield request.param
    module.set_train_cache_bytes(previous)


@pytest.mark.parametrize("dtype,tol", [(torch.float64, 1e-10), (torch.float32, 2e-2)])
@pytest.mark.parametrize("batch", [257, 300])
def test_large_batches_in_spans_or_whole_are_the_generic_step(cache, dtype, tol, batch, threads):
    threads(2)
    lr = 0.05
    ref, fused = model(dtype), model(dtype)
    ref_opt, fused_opt = optim.Adam(ref.parameters(), lr=lr), optim.Adam(fused.parameters(), lr=lr)
    step = FusedTrainStep(fused, fused_opt)
    for x, y in batches(3, batch, dtype):
        expect = generic_step(ref, ref_opt, x, y)
        assert step(x, y).item() == pytest.approx(expect.item(), rel=1e-6 if dtype == torch.float32 else 1e-13)
    assert step.fused_steps == 3
    for p, q in zip(ref.parameters(), fused.parameters()):
        assert (p - q).abs().max().item() <= tol * lr


@pytest.mark.parametrize("batch", [7, 100, 257])
def test_same_bits_at_any_thread_count(batch, cache, threads):
    results = []
    for n in (1, 2, 3):
        threads(n)
        m = model(torch.float32)
        opt = optim.Adam(m.parameters(), lr=0.05)
        step = FusedTrainStep(m, opt)
        losses = [step(x, y) for x, y in batches(3, batch, torch.float32)]
        results.append(losses + state_of(m, opt))
    for other in results[1:]:
        assert all(torch.equal(a, b) for a, b in zip(results[0], other))


def test_state_dict_is_adams_and_resumes_either_way(threads):
    """The fused step keeps torch.optim.Adam's state, so a run moves between the two steps: N fused
    steps then M generic ones equal N + M generic ones (to float rounding)."""
    threads(1)
    data = batches(5, 50, torch.float64)
    ref = model()
    ref_opt = optim.Adam(ref.parameters(), lr=0.02)
    for x, y in data:
        generic_step(ref, ref_opt, x, y)
    m = model()
    opt = optim.Adam(m.parameters(), lr=0.02)
    step = FusedTrainStep(m, opt)
    for x, y in data[:3]:
        step(x, y)
    resumed = model(seed=9)
    resumed.load_state_dict(m.state_dict())
    resumed_opt = torch.optim.Adam(resumed.parameters(), lr=0.02)
    resumed_opt.load_state_dict(opt.state_dict())  # torch's own Adam reads the fused step's state
    for x, y in data[3:]:
        generic_step(resumed, resumed_opt, x, y)
    for a, b in zip(state_of(ref, ref_opt), state_of(resumed, resumed_opt)):
        assert torch.allclose(a, b, rtol=1e-9, atol=1e-12)


def test_binarize_input_module(threads):
    threads(2)
    ref, fused = model(binarize=True), model(binarize=True)
    ref_opt, fused_opt = optim.Adam(ref.parameters(), lr=0.05), optim.Adam(fused.parameters(), lr=0.05)
    step = FusedTrainStep(fused, fused_opt)
    for x, y in batches(2, 30, torch.float64):
        assert step(x, y).item() == pytest.approx(generic_step(ref, ref_opt, x, y).item(), rel=1e-13)
    assert step.fused_steps == 2
    for p, q in zip(ref.parameters(), fused.parameters()):
        assert torch.allclose(p, q, atol=1e-12)


def _hooked(m, opt):
    m[1].register_forward_hook(lambda *a: None)


def _eval_layer(m, opt):
    m[2].eval()


def _python_layer(m, opt):
    m[1].implementation = "python"


def _temperature(m, opt):
    m[1].relaxation = ("softmax", 2.0)


def _frozen(m, opt):
    m[1].weights.requires_grad_(False)


def _amsgrad(m, opt):
    opt.param_groups[0]["amsgrad"] = True


def _weight_decay(m, opt):
    opt.param_groups[0]["weight_decay"] = 0.01


def _split_groups(m, opt):
    params = opt.param_groups[0]["params"]
    opt.param_groups[0]["params"] = params[:1]
    opt.add_param_group({"params": params[1:]})


@pytest.mark.parametrize("change,reason", [
    (_hooked, "fused kernel"), (_eval_layer, "fused kernel"), (_python_layer, "fused kernel"),
    (_temperature, "fused kernel"), (_frozen, "fused kernel"), (_amsgrad, "Adam setting"),
    (_weight_decay, "Adam setting"), (_split_groups, "one Adam parameter group"),
])
def test_the_generic_step_where_the_fused_one_does_not_apply(change, reason, threads):
    """Each case takes the generic step, with the generic step's exact result, and says why."""
    threads(1)
    ref, m = model(), model()
    ref_opt, opt = optim.Adam(ref.parameters(), lr=0.05), optim.Adam(m.parameters(), lr=0.05)
    change(ref, ref_opt)
    change(m, opt)
    step = FusedTrainStep(m, opt)
    for x, y in batches(2, 20, torch.float64):
        assert reason in step.unsupported(x, y)
        assert torch.equal(step(x, y), generic_step(ref, ref_opt, x, y))
    assert step.fused_steps == 0
    for p, q in zip(ref.parameters(), m.parameters()):
        assert torch.equal(p, q)


@pytest.mark.parametrize("build,reason", [
    (lambda: (nn.Sequential(nn.Flatten(), LogicLayer(48, 100, implementation="cpu"), GroupSum(5, 1.0)), optim.Adam),
     "two or more LogicLayers"),
    (lambda: (nn.Sequential(nn.Flatten(), LogicLayer(48, 100, implementation="cpu"),
                            LogicLayer(100, 100, implementation="cpu")), optim.Adam), "GroupSum"),
    (lambda: (model(), torch.optim.Adam), "lgc.frontend.optim.Adam"),
    (lambda: (nn.Sequential(nn.Flatten(), nn.Linear(48, 48), LogicLayer(48, 100, implementation="cpu"),
                            LogicLayer(100, 100, implementation="cpu"), GroupSum(5, 1.0)).double(), optim.Adam),
     "other than the logic layers"),
])
def test_other_models_and_optimisers_take_the_generic_step(build, reason):
    m, adam = build()
    m = m.double()
    opt = adam(m.parameters(), lr=0.01)
    step = FusedTrainStep(m, opt)
    x, y = batches(1, 10, torch.float64)[0]
    assert reason in step.unsupported(x, y)
    before = [p.detach().clone() for p in m.parameters()]
    loss = step(x, y)
    assert torch.isfinite(loss) and step.fused_steps == 0
    assert any(not torch.equal(a, b) for a, b in zip(before, m.parameters()))  # it trained


def test_targets_outside_the_classes_follow_cross_entropy(threads):
    """ignore_index (-100) is cross_entropy's: the generic step ignores those samples; any other
    out-of-range class raises as cross_entropy does, before anything is updated."""
    threads(1)
    ref, m = model(), model()
    ref_opt, opt = optim.Adam(ref.parameters(), lr=0.05), optim.Adam(m.parameters(), lr=0.05)
    step = FusedTrainStep(m, opt)
    x, y = batches(1, 20, torch.float64)[0]
    y[3] = -100
    assert torch.equal(step(x, y), generic_step(ref, ref_opt, x, y))
    assert step.fused_steps == 0
    before = state_of(m, opt)
    y[3] = 5  # k = 5 classes: 0 .. 4
    with pytest.raises((IndexError, RuntimeError)):
        step(x, y)
    assert all(torch.equal(a, b) for a, b in zip(before, state_of(m, opt)))


def test_bad_input_is_a_clear_error(threads):
    threads(1)
    m = model()
    step = FusedTrainStep(m, optim.Adam(m.parameters(), lr=0.05))
    x, y = batches(1, 10, torch.float64)[0]
    with pytest.raises(ValueError, match="expects input"):
        step(torch.rand(10, 7, 7, dtype=torch.float64), y)  # 49 features for a 48-input layer
    with pytest.raises((ValueError, RuntimeError)):
        step(x, y[:9])  # 10 samples, 9 targets
    with pytest.raises((ValueError, RuntimeError)):
        step(x, y.float())  # float targets: cross_entropy's probabilities, of the wrong shape here
    # an input of another dtype than the logits': the generic step, as the layers take it
    ref = model()
    ref_opt = optim.Adam(ref.parameters(), lr=0.05)
    ref.load_state_dict(m.state_dict())
    ref_opt.load_state_dict(step.optimizer.state_dict())
    assert torch.equal(step(x.float(), y), generic_step(ref, ref_opt, x.float(), y))


def test_lgc_train_takes_the_fused_step(tmp_path):
    """``lgc train`` on the CPU uses the fused step for a plain run and the generic one when a hook
    adjusts the loss."""
    from lgc.training import TrainConfig
    from lgc.training.trainer import Trainer
    cfg = TrainConfig(dataset="digits", num_neurons=300, num_layers=2, tau=3.0, batch_size=64, num_iterations=6,
                      eval_freq=6, seed=1, out=str(tmp_path / "run"), progress=False, threads=1, device="cpu",
                      implementation="cpu")
    trainer = Trainer(cfg, log=lambda s: None)
    trainer.fit()
    assert trainer.fused_step is not None and trainer.fused_step.fused_steps == 6

    from lgc.training.hooks import Hook

    class Penalty(Hook):
        def adjust_loss(self, trainer, loss, logits, batch):
            return loss + 0.0 * logits.sum()

    hooked = Trainer(TrainConfig(**{**cfg.__dict__, "out": str(tmp_path / "hooked")}), hooks=[Penalty()],
                     log=lambda s: None)
    hooked.fit()
    assert hooked.fused_step is None


def test_adam_states_at_different_steps_take_the_generic_step(threads):
    """A state loaded with the layers at different step counts: torch's Adam corrects each layer's
    bias by its own count, so the fused step (one count for all) leaves it to the generic step."""
    threads(1)
    ref, m = model(), model()
    ref_opt, opt = optim.Adam(ref.parameters(), lr=0.05), optim.Adam(m.parameters(), lr=0.05)
    step = FusedTrainStep(m, opt)
    x, y = batches(1, 20, torch.float64)[0]
    step(x, y)
    generic_step(ref, ref_opt, x, y)
    for o in (opt, ref_opt):
        o.state[next(iter(o.param_groups[0]["params"]))]["step"] += 3
    assert torch.equal(step(x, y), generic_step(ref, ref_opt, x, y))
    assert step.fused_steps == 1
    assert [float(opt.state[p]["step"]) for p in m.parameters()] == [5.0, 2.0, 2.0]


def test_phase_clock(threads):
    """The extension's per-phase clock (what benchmarks/train_step.py breaks the fused step down by)."""
    threads(1)
    m = model()
    step = FusedTrainStep(m, optim.Adam(m.parameters(), lr=0.05))
    x, y = batches(1, 20, torch.float64)[0]
    step(x, y)
    module = kernels.loaded_cpu_backend().module
    module.stack_phase_times()
    step(x, y)
    times = module.stack_phase_times()
    assert set(times) == {"softmax", "input", "layers", "head", "loss", "backward", "reduce"}
    assert all(t > 0 for t in times.values())
    assert all(t == 0 for t in module.stack_phase_times().values())  # read and zeroed


@pytest.mark.parametrize("bad", [-1, 300, 2**40])
def test_wiring_corrupted_in_place_is_refused_before_any_update(bad, threads):
    """An index buffer written in place after construction (no setter ran): the extension checks the
    wiring on every call, so the step raises instead of reading outside the activations."""
    threads(1)
    m = model()
    opt = optim.Adam(m.parameters(), lr=0.05)
    step = FusedTrainStep(m, opt)
    x, y = batches(1, 20, torch.float64)[0]
    step(x, y)
    before = state_of(m, opt)
    with torch.no_grad():
        m[2].index_b[7] = bad  # layer 300 -> 200 reads 0 .. 299
    with pytest.raises(RuntimeError, match="out of range"):
        step(x, y)
    assert all(torch.equal(a, b) for a, b in zip(before, state_of(m, opt)))
