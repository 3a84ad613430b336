"""The fused stack of LogicLayers (``LogicSequential``, ``logic_stack_cpu.h``) against the per-layer
cpu kernel: the same gradients to float rounding in both backward formulations, at any thread
count the same bits, numerical gradients, and the fallbacks that keep ``nn.Sequential``'s meaning."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from conftest import need
from lgc.frontend import GroupSum, LogicLayer, LogicSequential, build_model, kernels
from lgc.frontend import stack


@pytest.fixture(scope="module", autouse=True)
def cpu_kernel():
    need("cpu-kernel", kernels.cpu_kernel_unavailable())


@pytest.fixture
def formulation(request, monkeypatch):
    monkeypatch.setattr(stack, "FORMULATION", request.param)
    return request.param


def model(cls, dims, dtype, *, head=True, grad_factor=1.0, seed=0):
    torch.manual_seed(seed)
    layers = [LogicLayer(i, o, implementation="cpu", grad_factor=grad_factor) for i, o in zip(dims, dims[1:])]
    return cls(nn.Flatten(), *layers, *([GroupSum(5, 3.0)] if head else [])).to(dtype)


def gradients(m, x, seed=1):
    """Output, input gradient and every parameter gradient of one forward/backward of ``m`` on ``x``."""
    x = x.detach().clone().requires_grad_(True)
    y = m(x)
    g = torch.randn(y.shape, dtype=y.dtype, generator=torch.Generator().manual_seed(seed))
    (y * g).sum().backward()
    return [y.detach(), x.grad] + [p.grad for p in m.parameters()]


def calls(monkeypatch):
    count = [0]
    apply = stack._LogicStack.apply

    def counting(*args):
        count[0] += 1
        return apply(*args)

    monkeypatch.setattr(stack._LogicStack, "apply", counting)
    return count


# 0: scatter up to batch 192 and gather above; 1: always the scatter; 2: always the gather
@pytest.mark.parametrize("formulation", [0, 1, 2], indirect=True)
@pytest.mark.parametrize("dtype,tol", [(torch.float64, 1e-12), (torch.float32, 1e-5)])
@pytest.mark.parametrize("batch", [1, 7, 100, 257])
@pytest.mark.parametrize("threads", [1, 2])
def test_stack_gradients_match_the_per_layer_kernel(formulation, dtype, tol, batch, threads, monkeypatch):
    count = calls(monkeypatch)
    dims = [30, 500, 400, 300]  # 1,200 gates: more than one thread's work at batch 100
    x = torch.rand(batch, 30, dtype=dtype, generator=torch.Generator().manual_seed(batch))
    kernels.set_num_threads(threads)
    try:
        for head, grad_factor in ((True, 1.0), (False, 1.5)):
            want = gradients(model(nn.Sequential, dims, dtype, head=head, grad_factor=grad_factor), x)
            got = gradients(model(LogicSequential, dims, dtype, head=head, grad_factor=grad_factor), x)
            for name, p, q in zip(["y", "grad_x"] + [f"grad_w{i}" for i in range(3)], want, got):
                scale = float(p.abs().max()) or 1.0
                torch.testing.assert_close(q, p, rtol=tol, atol=tol * scale, msg=name)
    finally:
        kernels.set_num_threads(None)
    assert count[0] == 2  # both models ran fused


@pytest.mark.parametrize("formulation", [1, 2], indirect=True)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_stack_results_do_not_depend_on_thread_count(formulation, dtype):
    """Column blocks fixed by the batch alone, their partial sums added in block order (scatter), or
    each sum by one thread (gather): 1, 2 and 3 threads give the same bits."""
    x = torch.rand(257, 40, dtype=dtype, generator=torch.Generator().manual_seed(3))
    got = []
    try:
        for threads in (1, 2, 3):
            kernels.set_num_threads(threads)
            got.append(gradients(model(LogicSequential, [40, 700, 700, 600], dtype), x))
    finally:
        kernels.set_num_threads(None)
    for other in got[1:]:
        for p, q in zip(got[0], other):
            assert torch.equal(p, q)


@pytest.mark.parametrize("formulation", [1, 2], indirect=True)
def test_stack_gradcheck(formulation):
    torch.manual_seed(4)
    layers = [LogicLayer(6, 8, implementation="cpu"), LogicLayer(8, 10, implementation="cpu")]
    ws = [m.weights.detach().double().requires_grad_(True) for m in layers]
    a = [(m.index_a, m.index_b) for m in layers]
    backend = kernels.cpu_backend()
    for head in (None, (5, 2.0)):
        x = torch.rand(9, 6, dtype=torch.float64, requires_grad=True)
        f = lambda x, *w: stack._LogicStack.apply(x, backend, tuple(a), (1.0, 1.0), head, *w)  # noqa: E731
        assert torch.autograd.gradcheck(f, (x, *ws))


def test_logic_sequential_keeps_nn_sequential_meaning(monkeypatch):
    """Same state_dict keys as nn.Sequential; eval mode, other relaxations, hooks and the python
    implementation run module by module (the same values as nn.Sequential)."""
    count = calls(monkeypatch)
    dims = [12, 40, 30, 20]
    fused, plain = model(LogicSequential, dims, torch.float32), model(nn.Sequential, dims, torch.float32)
    assert list(fused.state_dict()) == list(plain.state_dict())
    x = torch.rand(16, 12)
    fused.eval(), plain.eval()
    assert torch.equal(fused(x), plain(x)) and count[0] == 0
    fused.train(), plain.train()
    fused[1].register_forward_hook(lambda *args: None)
    assert torch.equal(fused(x), plain(x)) and count[0] == 0
    sliced = fused[2:]  # a slice is a LogicSequential too; a run of 2 layers then the head
    assert isinstance(sliced, LogicSequential)
    sliced(torch.rand(16, 40))
    assert count[0] == 1
    python = nn.Sequential(*[LogicLayer(i, o, implementation="python") for i, o in zip(dims, dims[1:])])
    LogicSequential(*python)(x)
    assert count[0] == 1


def test_build_model_fuses_the_stack(monkeypatch):
    count = calls(monkeypatch)
    m = build_model({"in_dim": 20, "layers": [30, 40], "k": 4, "tau": 2.0, "implementation": "cpu"})
    assert isinstance(m, LogicSequential)
    m.train()(torch.rand(8, 20)).sum().backward()
    assert count[0] == 1 and all(p.grad is not None for p in m.parameters())
