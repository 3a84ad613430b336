"""OrPool2d on the CPU conv kernel (``conv_tree_cpu.cpp``: max pooling with its argmax on the kernels'
pool) against ``F.max_pool2d``, which it stands for: the same values and gradients bit for bit,
ties (0/1 inputs) and NaN by max_pool2d's rule, any thread count; the fallbacks."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from conftest import need
from lgc.frontend import OrPool2d, conv_kernels, kernels


@pytest.fixture(scope="module")
def lib():
    need("cpu-kernel", conv_kernels.cpu_kernel_unavailable())
    return conv_kernels.loaded_cpu_library()


def pooled(pool, x, g):
    """Values and input gradient of ``pool`` on ``x`` for the output gradient ``g``."""
    x = x.detach().clone().requires_grad_(True)
    y = pool(x)
    y.backward(g)
    return y.detach(), x.grad


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("shape,kernel,stride", [
    ((5, 3, 18, 18), 2, 2), ((2, 4, 9, 11), 2, 2), ((3, 2, 10, 10), 3, 2), ((2, 2, 7, 9), (2, 3), (1, 2)),
    ((64, 12, 18, 18), 2, 2), ((2, 3, 40, 41), 2, 2), ((1, 1, 4, 4), 4, 4),
])
@pytest.mark.parametrize("threads", [1, 2])
def test_or_pool_is_max_pool2d_bit_for_bit(lib, dtype, shape, kernel, stride, threads):
    before = kernels.get_num_threads()
    kernels.set_num_threads(threads)
    try:
        g = torch.Generator().manual_seed(sum(shape))
        x = torch.rand(shape, generator=g, dtype=dtype)
        x = torch.where(x > 0.6, torch.ones_like(x), x)  # ties, as on nearly binary activations
        x.view(-1)[::37] = float("nan")
        pool = OrPool2d(kernel, stride)
        gy = torch.randn(pool(x).shape, generator=g, dtype=dtype)
        y, gx = pooled(pool, x, gy)
        ref_y, ref_gx = pooled(lambda t: F.max_pool2d(t, pool.kernel_size, pool.stride), x, gy)
        assert torch.equal(torch.isnan(y), torch.isnan(ref_y))
        assert torch.equal(torch.nan_to_num(y), torch.nan_to_num(ref_y))
        assert torch.equal(gx, ref_gx)
    finally:
        kernels.set_num_threads(before)


def test_fallbacks_are_max_pool2d(lib):
    """Padding, integer input and windows over 256 values take F.max_pool2d (padded with 0)."""
    x = torch.rand(2, 3, 8, 8)
    padded = OrPool2d(2, 2, padding=1)(x)
    assert torch.equal(padded, F.max_pool2d(F.pad(x, (1, 1, 1, 1)), 2, 2))
    big = torch.rand(1, 1, 17, 17)
    assert torch.equal(OrPool2d(17)(big), F.max_pool2d(big, 17))
    bits = (torch.rand(2, 3, 8, 8) > 0.5)
    assert torch.equal(OrPool2d(2)(bits), F.max_pool2d(bits.float(), 2))


def test_bad_geometry_is_an_error_not_a_read_outside(lib):
    x = torch.rand(1, 1, 4, 4)
    with pytest.raises(RuntimeError, match="failed with code 1"):
        lib.or_pool_forward(x, (2, 2), (2, 2), (3, 3))  # 3 windows of 2 at stride 2 need 6 columns
    with pytest.raises(ValueError):
        lib.or_pool_forward(x.to(torch.float16), (2, 2), (2, 2), (2, 2))
