"""The fused implementations (cpu kernel, CUDA kernels) against the python one and against
numerical gradients; same-operand gradients for every op; the auto choice and its fallback."""
from __future__ import annotations

import os
import subprocess
import warnings

import numpy as np
import pytest
import torch
from hypothesis import given, strategies as st

from conftest import need
from lgc.frontend import GroupSum, LogicLayer, kernels, lower
from lgc.ir import ops, simulate


@pytest.fixture(scope="module")
def cpu_backend():
    """The cpu Implementation (fused coefficients and fused gate kernel)."""
    need("cpu-kernel", kernels.cpu_kernel_unavailable())
    return kernels.resolve("cpu", torch.zeros(1, 1))


def run(impl, x, c, a, b, grad_factor=1.0):
    impl = kernels.PYTHON if impl == "python" else impl
    return impl.logic(x, c, a, b, grad_factor)


def coeffs(impl, w):
    impl = kernels.PYTHON if impl == "python" else impl
    return impl.coefficients(w, False)


def forward_backward(impl, x, w, a, b, grad_factor=1.0, seed=0):
    x = x.detach().clone().requires_grad_(True)
    w = w.detach().clone().requires_grad_(True)
    y = run(impl, x, coeffs(impl, w), a, b, grad_factor)
    g = torch.randn(y.shape, dtype=y.dtype, generator=torch.Generator().manual_seed(seed)).to(y.device)
    (y * g).sum().backward()
    return y.detach(), x.grad, w.grad


def wiring(in_dim, out_dim, gen, same_fraction=0.3):
    a = torch.randint(0, in_dim, (out_dim,), generator=gen)
    b = torch.randint(0, in_dim, (out_dim,), generator=gen)
    same = torch.rand(out_dim, generator=gen) < same_fraction
    b[same] = a[same]
    return a, b


@pytest.mark.parametrize("batch", [1, 3, 17])
def test_gradcheck_python_and_cpu(cpu_backend, batch):
    gen = torch.Generator().manual_seed(batch)
    x = torch.rand(batch, 5, dtype=torch.float64, generator=gen, requires_grad=True)
    w = torch.randn(7, 16, dtype=torch.float64, generator=gen, requires_grad=True)
    a, b = wiring(5, 7, gen)
    for impl in ("python", cpu_backend):
        assert torch.autograd.gradcheck(lambda x, w: run(impl, x, coeffs(impl, w), a, b), (x, w))


@given(seed=st.integers(0, 2**31), batch=st.sampled_from([0, 1, 2, 15, 16, 17, 100, 257]),
       in_dim=st.integers(1, 60), out_dim=st.integers(1, 300), dtype=st.sampled_from([torch.float32, torch.float64]),
       grad_factor=st.sampled_from([1.0, 0.5]))
def test_cpu_kernel_agrees_with_python(cpu_backend, seed, batch, in_dim, out_dim, dtype, grad_factor):
    gen = torch.Generator().manual_seed(seed)
    x = torch.rand(batch, in_dim, dtype=dtype, generator=gen)
    w = 3 * torch.randn(out_dim, 16, dtype=dtype, generator=gen)
    a, b = wiring(in_dim, out_dim, gen)
    want = forward_backward("python", x, w, a, b, grad_factor, seed)
    got = forward_backward(cpu_backend, x, w, a, b, grad_factor, seed)
    for name, p, q in zip(("y", "grad_x", "grad_w"), want, got):
        torch.testing.assert_close(q, p, rtol=1e-5, atol=1e-5, msg=name)


def test_cpu_kernel_large_batch_uses_threads_and_agrees(cpu_backend):
    gen = torch.Generator().manual_seed(11)
    x = torch.rand(1000, 300, generator=gen)
    w = torch.randn(500, 16, generator=gen)
    a, b = wiring(300, 500, gen)
    for p, q in zip(forward_backward("python", x, w, a, b), forward_backward(cpu_backend, x, w, a, b)):
        torch.testing.assert_close(q, p, rtol=1e-5, atol=1e-4)


def test_cpu_kernel_results_do_not_depend_on_thread_count(cpu_backend):
    """Every output element is summed by one thread in one order (the gather backward), so 1 and 3
    threads give the same bits, a resumed run repeats an uninterrupted one whatever its threads."""
    gen = torch.Generator().manual_seed(5)
    x = torch.rand(200, 300, generator=gen)
    w = torch.randn(700, 16, generator=gen)
    a, b = wiring(300, 700, gen)
    got = []
    try:
        for threads in (1, 3):
            kernels.set_num_threads(threads)
            got.append(forward_backward(cpu_backend, x, w, a, b))
    finally:
        kernels.set_num_threads(None)
    for p, q in zip(*got):
        assert torch.equal(p, q)
    with pytest.raises(ValueError, match="positive integer"):
        kernels.set_num_threads(0)


def test_cpu_kernel_pool_keeps_to_the_thread_count_after_a_wider_call(cpu_backend):
    """A pool grown by a 4-thread call must not lend its extra helpers to a later 2-thread call
    (it did: on a 16-core machine "2 threads" ran on up to 16), nor any helper to a 1-thread call."""
    module = kernels.cpu_backend().module
    assert module.pool_threads_used(64, 4) <= 4
    for threads in (2, 1, 3):
        assert 1 <= module.pool_threads_used(64, threads) <= threads


@pytest.mark.parametrize("batch", [1, 7, 33])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_group_sum_kernel_backward_gives_autograds_bits(cpu_backend, batch, dtype):
    """GroupSum after a kernel layer takes the kernel's feature-major sums and backward: the scores
    agree with torch's sum to float rounding, with the same bits at 1 and 3 threads; given the same
    upstream gradient the parameter gradients are those of torch's broadcast-and-copy, bit for bit."""
    gen = torch.Generator().manual_seed(batch)
    torch.manual_seed(batch)
    layers = [LogicLayer(20, 60, implementation="cpu").to(dtype), LogicLayer(60, 90, implementation="cpu").to(dtype)]
    model = torch.nn.Sequential(*layers, GroupSum(3, 7.0))
    x = torch.rand(batch, 20, dtype=dtype, generator=gen)
    g = torch.randn(batch, 3, dtype=dtype, generator=gen)
    got = []
    loaded = kernels._loaded_cpu_backend
    assert loaded is not None  # built by the cpu_backend fixture
    try:
        for backend in (loaded, None):  # None: GroupSum falls back to torch ops
            kernels._loaded_cpu_backend = backend
            model.zero_grad()
            y = model(x)
            (y * g).sum().backward()
            got.append((y.detach(), [p.grad.clone() for p in model.parameters()]))
    finally:
        kernels._loaded_cpu_backend = loaded
    torch.testing.assert_close(got[0][0], got[1][0], rtol=1e-6 if dtype == torch.float32 else 1e-14, atol=0)
    for p, q in zip(got[0][1], got[1][1]):  # the upstream gradient g does not depend on the scores
        assert torch.equal(p, q)
    try:
        scores = []
        for threads in (1, 3):
            kernels.set_num_threads(threads)
            scores.append(model(x))
    finally:
        kernels.set_num_threads(None)
    assert torch.equal(scores[0], scores[1])


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_pool_adam_matches_torch_adam_and_shares_its_state(cpu_backend, dtype, monkeypatch):
    """lgc.frontend.optim.Adam (the step on the kernels' pool) against torch.optim.Adam over 6 steps:
    parameters and moments agree to float rounding, 1 and 2 threads give the same bits, a parameter
    without a gradient is left alone, and the state_dict moves between the two in both directions."""
    from lgc.frontend.optim import Adam
    module = kernels.loaded_cpu_backend().module  # loaded by the cpu_backend fixture
    pooled_steps = []
    step_fn = module.adam_step
    monkeypatch.setattr(module, "adam_step", lambda *a: pooled_steps.append(1) or step_fn(*a))
    gen = torch.Generator().manual_seed(3)
    init = [torch.randn(3000, 16, dtype=dtype, generator=gen), torch.randn(5, dtype=dtype, generator=gen),
            torch.randn(7, dtype=dtype, generator=gen)]
    grads = [[torch.randn(p.shape, dtype=dtype, generator=gen) for p in init[:2]] for _ in range(6)]

    def train(opt_class, threads=None, steps=6, **kw):
        params = [torch.nn.Parameter(p.clone()) for p in init]
        opt = opt_class(params, lr=0.03, betas=(0.8, 0.95), **kw)
        kernels.set_num_threads(threads)
        try:
            for gs in grads[:steps]:
                for p, g in zip(params, gs):  # the third parameter never gets a gradient
                    p.grad = g.clone()
                opt.step()
        finally:
            kernels.set_num_threads(None)
        return params, opt

    want, want_opt = train(torch.optim.Adam)
    got1, got_opt = train(Adam, threads=1)
    got2, _ = train(Adam, threads=2)
    tol = dict(rtol=1e-5, atol=1e-6) if dtype == torch.float32 else dict(rtol=1e-12, atol=1e-13)
    for p, q, r in zip(want, got1, got2):
        torch.testing.assert_close(q.detach(), p.detach(), **tol)
        assert torch.equal(q, r)
    assert torch.equal(got1[2], init[2])
    assert len(pooled_steps) == 12  # 6 steps each at 1 and 2 threads ran on the pool
    for sw, sg in zip(want_opt.state_dict()["state"].values(), got_opt.state_dict()["state"].values()):
        assert float(sw["step"]) == float(sg["step"]) == 6.0
        torch.testing.assert_close(sg["exp_avg"], sw["exp_avg"], **tol)
        torch.testing.assert_close(sg["exp_avg_sq"], sw["exp_avg_sq"], **tol)
    # resume across: 3 steps with one optimiser, then 3 more with the other from its state_dict
    for first, second in ((torch.optim.Adam, Adam), (Adam, torch.optim.Adam)):
        params, opt = train(first, steps=3)
        resumed = second(params, lr=0.03, betas=(0.8, 0.95))
        resumed.load_state_dict(opt.state_dict())
        for gs in grads[3:]:
            for p, g in zip(params, gs):
                p.grad = g.clone()
            resumed.step()
        for p, q in zip(want, params):
            torch.testing.assert_close(q.detach(), p.detach(), **tol)
    # settings the pool step does not implement run torch's own step: the same bits as torch
    for kw in (dict(amsgrad=True), dict(weight_decay=0.1), dict(maximize=True)):
        a, _ = train(torch.optim.Adam, **kw)
        b, _ = train(Adam, **kw)
        for p, q in zip(a, b):
            assert torch.equal(p, q)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_cpu_coefficients_match_torch_softmax_and_keep_nan(cpu_backend, dtype):
    """The fused softmax (kept for the backward) against softmax @ RELAX; NaN or infinite logits
    give NaN coefficients and gradients for their gate only, as torch.softmax does."""
    gen = torch.Generator().manual_seed(6)
    w = 4 * torch.randn(37, 16, dtype=dtype, generator=gen)
    w[3, 5] = float("nan")
    w[7, 0] = float("inf")
    w[11] = float("-inf")
    w[13, 2] = -200.0   # far below the maximum: no visible mass, no NaN
    want_w = w.clone().requires_grad_(True)
    got_w = w.clone().requires_grad_(True)
    want = kernels.gate_coefficients(want_w, hard=False)
    got = coeffs(cpu_backend, got_w)
    g = torch.randn(want.shape, dtype=dtype, generator=gen)
    (want * g).sum().backward()
    (got * g).sum().backward()
    bad = torch.tensor([i in (3, 7, 11) for i in range(37)])
    assert torch.isnan(got[bad]).all() and torch.isnan(got_w.grad[bad]).all()
    assert torch.isnan(want[bad]).all()
    torch.testing.assert_close(got[~bad], want[~bad], rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(got_w.grad[~bad], want_w.grad[~bad], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("op", range(16))
def test_same_operand_gradient_every_op(cpu_backend, op):
    """A gate reading one node twice: d f(p, p) / dp = c1 + c2 + 2 c3 p (difflogic gives 2 df/da)."""
    x = torch.tensor([[0.0, 0.3, 0.8, 1.0]], dtype=torch.float64).t().contiguous()  # 4 samples, 1 input
    c0, c1, c2, c3 = (float(v) for v in ops.RELAX[op])
    c = torch.tensor([[c0, c1, c2, c3]], dtype=torch.float64)
    a = b = torch.zeros(1, dtype=torch.int64)
    want = c1 + c2 + 2 * c3 * x[:, 0]
    for impl in ("python", cpu_backend):
        xi = x.clone().requires_grad_(True)
        y = run(impl, xi, c, a, b)
        torch.testing.assert_close(y[:, 0], c0 + (c1 + c2) * x[:, 0] + c3 * x[:, 0] ** 2)
        y.sum().backward()
        torch.testing.assert_close(xi.grad[:, 0], want)
        # and numerically, with the coefficients' gradient too
        cc = c.clone().requires_grad_(True)
        assert torch.autograd.gradcheck(lambda x, c: run(impl, x, c, a, b), (x.clone().requires_grad_(True), cc))


def test_explicit_implementation_checks_device():
    with pytest.raises(ValueError, match="CUDA tensor"):
        LogicLayer(4, 3, implementation="cuda")(torch.rand(2, 4))
    with pytest.raises(ValueError, match="float32/float64 CPU"):
        LogicLayer(4, 3, implementation="cpu")(torch.rand(2, 4, dtype=torch.bfloat16))


def test_layer_implementations_agree_and_lower_exactly(cpu_backend):
    torch.manual_seed(2)
    layers = [LogicLayer(20, 64, implementation="python"), LogicLayer(64, 30, implementation="python")]
    model_py = torch.nn.Sequential(*layers, GroupSum(3, tau=2.0))
    model_cpu = torch.nn.Sequential(LogicLayer(20, 64, implementation="cpu"), LogicLayer(64, 30, implementation="cpu"),
                                    GroupSum(3, tau=2.0))
    model_cpu.load_state_dict(model_py.state_dict())
    x = torch.rand(50, 20)
    outs = []
    for model in (model_py, model_cpu):
        model.zero_grad()
        y = model(x)
        (y * torch.arange(3.0)).sum().backward()
        outs.append([y.detach()] + [p.grad for p in model.parameters()])
    for p, q in zip(*outs):
        torch.testing.assert_close(q, p, rtol=1e-5, atol=1e-5)
    bits = torch.rand(65, 20) < 0.5
    model_cpu.eval()
    with torch.no_grad():
        scores = torch.round(model_cpu(bits.float()) * 2.0).to(torch.int32).numpy()
    np.testing.assert_array_equal(simulate(lower(model_cpu), bits.numpy()), scores)


def test_auto_picks_cpu_kernel(cpu_backend):
    assert kernels.resolve("auto", torch.zeros(2, 3)).name == "cpu"
    assert kernels.resolve("auto", torch.zeros(2, 3, dtype=torch.float16)) is kernels.PYTHON


def test_auto_falls_back_with_one_warning_or_raises_when_required(monkeypatch):
    def broken():
        raise kernels.BuildError("no compiler (simulated)")
    monkeypatch.setattr(kernels, "cpu_backend", broken)
    monkeypatch.setattr(kernels, "_warned", set())
    monkeypatch.delenv("LGC_REQUIRE", raising=False)
    layer = LogicLayer(6, 5)
    x = torch.rand(3, 6)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        y1, y2 = layer(x), layer(x)
    assert len([w for w in caught if "falling back" in str(w.message)]) == 1
    torch.testing.assert_close(y1, kernels.python_logic(x, layer.coefficients(), layer.index_a, layer.index_b))
    assert layer.coefficients().grad_fn is not None
    assert torch.equal(y1, y2)
    monkeypatch.setenv("LGC_REQUIRE", "cpu-kernel")
    with pytest.raises(kernels.BuildError, match="simulated"):
        layer(x)
    with pytest.raises(kernels.BuildError):
        LogicLayer(6, 5, implementation="cpu")(x)  # an explicit choice never falls back


def test_cuda_sources_compile_with_nvcc(tmp_path):
    nvcc = kernels.nvcc_path()
    need("nvcc", None if nvcc else "nvcc not on PATH")
    from lgc._build import cuda_sources
    for name, text in cuda_sources("logic_layer.cu").items():
        (tmp_path / name).write_text(text)
    src = tmp_path / "logic_layer.cu"
    proc = subprocess.run([nvcc, "-c", "-arch=sm_80", str(src), "-o", str(tmp_path / "ll.o")],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    # the shared library that the cuda implementation loads builds too (cached by content)
    from lgc._build import build_shared_library
    lib = build_shared_library(cuda_sources("logic_layer.cu"), nvcc, kernels.cuda_flags("sm_80"), kind="cuda-train")
    assert lib.exists()


def test_cuda_kernels_match_cpu():
    need("gpu", None if torch.cuda.is_available() else "no CUDA device")
    gen = torch.Generator().manual_seed(4)
    for batch, in_dim, out_dim in [(1, 5, 7), (100, 784, 2000), (257, 64, 300)]:
        for dtype in (torch.float32, torch.float64):
            x = torch.rand(batch, in_dim, dtype=dtype, generator=gen)
            w = torch.randn(out_dim, 16, dtype=dtype, generator=gen)
            a, b = wiring(in_dim, out_dim, gen)
            want = forward_backward("python", x, w, a, b, 0.5)
            be = kernels.resolve("cuda", x.cuda())
            got = forward_backward(be, x.cuda(), w.cuda(), a.cuda(), b.cuda(), 0.5)
            for p, q in zip(want, got):
                torch.testing.assert_close(q.cpu(), p, rtol=1e-5, atol=1e-4)
    x = torch.rand(3, 6, dtype=torch.float64, device="cuda", requires_grad=True)
    w = torch.randn(8, 16, dtype=torch.float64, device="cuda", requires_grad=True)
    a, b = wiring(6, 8, gen)
    be = kernels.resolve("cuda", x)
    assert torch.autograd.gradcheck(lambda x, w: run(be, x, coeffs(be, w), a.cuda(), b.cuda()), (x, w))


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_cpu_kernel_works_in_a_forked_child(cpu_backend):
    """DataLoader workers fork: the kernel's thread pool must not wait for helpers the child lacks."""
    layer = LogicLayer(100, 400, implementation="cpu")
    x = torch.rand(200, 100)  # small enough that torch's own copies stay single-threaded
    backend = kernels.cpu_backend()
    xt, c, gyt = x.t().contiguous(), layer.coefficients().detach(), torch.rand(400, 200)
    want = layer(x).detach()  # starts the pool's helpers in the parent
    want_grads = backend.backward(xt, layer.index_a, layer.index_b, c, gyt, True)
    pid = os.fork()
    if pid == 0:  # child: exit 0 only when the results are right
        ok = False
        try:  # (no autograd here: torch's autograd engine itself does not survive fork after use)
            with torch.no_grad():
                y = layer(x)
            grads = backend.backward(xt, layer.index_a, layer.index_b, c, gyt, True)
            # compare in numpy: torch's own OpenMP ops can hang in a child forked after they ran
            ok = np.array_equal(y.numpy(), want.numpy()) and all(
                np.array_equal(p.numpy(), q.numpy()) for p, q in zip(grads, want_grads))
        finally:
            os._exit(0 if ok else 1)
    import signal
    import time
    deadline = time.monotonic() + 60
    while True:  # a hang in the child fails the test instead of hanging the suite
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            pytest.fail("the forked child did not finish within 60 s")
        time.sleep(0.05)
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0
