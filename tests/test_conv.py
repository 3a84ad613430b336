"""LogicConv2d / OrPool2d: gradients, fused kernels vs the PyTorch path, eval exactness, lowering
bit-exact against the eval-mode model, and the lowered conv model through every CPU target and
the Verilog export."""
from __future__ import annotations

import re
import shutil
import subprocess

import numpy as np
import pytest
import torch
from torch import nn

import lgc
from conftest import REPO, need
from lgc.frontend import Binarize, GroupSum, LogicLayer, lower
from lgc.frontend.conv import LogicConv2d, OrPool2d
from lgc.frontend.conv_kernels import cpu_kernel_unavailable

GEOMETRIES = [  # in_ch, out_ch, kernel, depth, stride, padding, H, W
    (1, 4, 3, 3, 1, 0, 7, 6),
    (3, 5, 3, 3, 1, 1, 8, 9),
    (2, 6, (2, 3), 2, (2, 1), (0, 1), 9, 8),
    (4, 3, 3, 4, 2, 2, 6, 7),
    (2, 2, 1, 1, 3, 0, 5, 5),
]


def _conv(geo, impl="python", residual_init=False, dtype=torch.float64, cpt=None, seed=0):
    c, o, k, d, s, p, _, _ = geo
    torch.manual_seed(seed)
    return LogicConv2d(c, o, k, depth=d, stride=s, padding=p, residual_init=residual_init, channels_per_tree=cpt,
                       implementation=impl).to(dtype)


pytestmark = pytest.mark.usefixtures("one_torch_thread")


GRADCHECK_GEOMETRIES = [  # small: gradcheck runs two forwards per input and per logit
    (1, 2, 3, 3, 1, 0, 4, 5),
    (3, 2, 3, 3, 1, 1, 3, 4),
    (2, 2, (2, 3), 2, (2, 1), (0, 1), 5, 4),
]


@pytest.mark.parametrize("impl", ["python", "cpu"])
@pytest.mark.parametrize("geo", GRADCHECK_GEOMETRIES)
def test_logic_conv_gradcheck(geo, impl):
    if impl == "cpu":
        need("cpu-kernel", cpu_kernel_unavailable())
    layer = _conv(geo, impl, cpt=2)
    x = torch.rand(1, geo[0], geo[6], geo[7], dtype=torch.float64, requires_grad=True)
    w = layer.weights.detach().clone().requires_grad_(True)
    f = lambda x, w: torch.func.functional_call(layer, {"weights": w}, (x,))  # noqa: E731
    assert torch.autograd.gradcheck(f, (x, w), eps=1e-6, atol=1e-6)


def test_or_pool_gradcheck_and_padding():
    torch.manual_seed(1)
    x = torch.rand(1, 2, 7, 6, dtype=torch.float64, requires_grad=True)  # distinct values: max is differentiable
    for pool in (OrPool2d(2), OrPool2d(3, 2, padding=1), OrPool2d((2, 3), (1, 2))):
        assert torch.autograd.gradcheck(pool, (x,), eps=1e-6, atol=1e-6)
    bits = (torch.rand(4, 2, 5, 5) > 0.7).float()
    y = OrPool2d(3, 2, padding=1)(bits)
    xp = torch.nn.functional.pad(bits, (1, 1, 1, 1))
    want = torch.stack([torch.stack([xp[:, :, 2 * i:2 * i + 3, 2 * j:2 * j + 3].amax((2, 3)) for j in range(3)], -1)
                        for i in range(3)], -2)
    assert torch.equal(y, want)


@pytest.mark.parametrize("geo", GEOMETRIES)
def test_cpu_kernel_matches_pytorch_path(geo):
    need("cpu-kernel", cpu_kernel_unavailable())
    layer = _conv(geo, "python", cpt=2)
    x = torch.rand(5, geo[0], geo[6], geo[7], dtype=torch.float64, requires_grad=True)
    y1 = layer(x)
    g = torch.randn_like(y1)
    gx1, gw1 = torch.autograd.grad(y1, (x, layer.weights), g)
    layer.implementation = "cpu"
    y2 = layer(x)
    gx2, gw2 = torch.autograd.grad(y2, (x, layer.weights), g)
    torch.testing.assert_close(y2, y1, rtol=0, atol=1e-12)
    torch.testing.assert_close(gx2, gx1, rtol=0, atol=1e-12)
    torch.testing.assert_close(gw2, gw1, rtol=0, atol=1e-12)
    layer.eval()  # hard gates: identical bits
    bits = (x.detach() > 0.5).to(torch.float32)
    layer.float()
    a = layer(bits)
    layer.implementation = "python"
    assert torch.equal(a, layer(bits))


def test_cpu_kernel_results_do_not_depend_on_thread_count():
    """The conv kernel splits samples into pieces fixed by the batch, not the thread count."""
    need("cpu-kernel", cpu_kernel_unavailable())
    from lgc.frontend import kernels
    layer = _conv(GEOMETRIES[1], "cpu", cpt=2, dtype=torch.float32)
    x = torch.rand(37, 3, 8, 9, requires_grad=True)
    got = []
    try:
        for threads in (1, 3):
            kernels.set_num_threads(threads)
            y = layer(x)
            got.append((y, *torch.autograd.grad(y, (x, layer.weights), torch.ones_like(y))))
    finally:
        kernels.set_num_threads(None)
    for p, q in zip(*got):
        assert torch.equal(p, q)


def test_residual_init_and_wiring_in_state_dict():
    layer = LogicConv2d(6, 10, 3, depth=3, padding=1)
    assert layer.weights.shape == (10, 7, 16)
    assert (layer.weights.argmax(-1) == 3).all()                 # pass-through gate A
    p = torch.softmax(layer.weights, -1)[..., 3]
    assert torch.allclose(p, torch.full_like(p, np.exp(5) / (np.exp(5) + 15)))
    # each tree reads at most 2 channels, leaves distinct (18 candidates >= 8 leaves)
    for o in range(10):
        assert len(set(layer.leaf_channel[o].tolist())) <= 2
        assert len(set(zip(*(t[o].tolist() for t in (layer.leaf_channel, layer.leaf_dy, layer.leaf_dx))))) == 8
    sd = layer.state_dict()
    assert {"weights", "leaf_channel", "leaf_dy", "leaf_dx"} <= set(sd)
    other = LogicConv2d(6, 10, 3, depth=3, padding=1)
    other.load_state_dict(sd)
    assert torch.equal(other.leaf_dx, layer.leaf_dx) and torch.equal(other.leaf_channel, layer.leaf_channel)
    bad = dict(sd, leaf_dy=torch.full_like(sd["leaf_dy"], 3))
    with pytest.raises(ValueError, match="leaf_dy"):
        other.load_state_dict(bad)


def test_bad_arguments_are_value_errors():
    with pytest.raises(ValueError):
        LogicConv2d(0, 3)
    with pytest.raises(ValueError):
        LogicConv2d(2, 3, depth=5)
    with pytest.raises(ValueError):
        LogicConv2d(2, 3, implementation="tpu")
    with pytest.raises(ValueError, match="expects input"):
        LogicConv2d(2, 3)(torch.zeros(1, 3, 5, 5))
    with pytest.raises(ValueError, match="smaller than"):
        LogicConv2d(2, 3, 5)(torch.zeros(1, 2, 3, 3))
    with pytest.raises(ValueError):
        OrPool2d(2, padding=2)


def _model(seed: int, head: bool = True) -> nn.Sequential:
    torch.manual_seed(seed)
    mods = [LogicConv2d(2, 6, 3, depth=3, padding=1, residual_init=False, input_size=(9, 8)), OrPool2d(2),
            LogicConv2d(6, 8, 2, depth=2, stride=2, residual_init=False, channels_per_tree=None),
            OrPool2d(2, 1, padding=1), nn.Flatten(), LogicLayer(8 * 3 * 3, 40, implementation="python")]
    if head:
        mods.append(GroupSum(5, tau=2.0))
    return nn.Sequential(*mods).eval()


def _bits(n: int, shape, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(n, *shape, generator=g) > 0.5).float()


@pytest.mark.parametrize("geo", GEOMETRIES)
def test_single_conv_lowering_is_bit_exact(geo):
    layer = _conv(geo, "python", dtype=torch.float32).eval()
    x = _bits(130, geo[:1] + geo[6:], seed=geo[0])
    with torch.no_grad():
        y = layer(x)
    assert set(torch.unique(y).tolist()) <= {0.0, 1.0}
    c = lower(nn.Sequential(layer), input_shape=(geo[0], geo[6], geo[7]))
    out = lgc.ir.simulate(c, x.reshape(len(x), -1).numpy().astype(bool))
    np.testing.assert_array_equal(out, y.reshape(len(x), -1).numpy().astype(np.uint8))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_mixed_model_lowering_is_bit_exact(seed):
    model = _model(seed)
    x = _bits(200, (2, 9, 8), seed)
    with torch.no_grad():
        want = torch.round(model(x) * 2.0).numpy().astype(np.int32)
    c = lower(model)
    assert c.head is not None and c.head.k == 5
    np.testing.assert_array_equal(lgc.ir.simulate(c, x.reshape(200, -1).numpy().astype(bool)), want)
    small = lgc.optimize(c, level=2)
    assert small.num_gates <= c.num_gates
    np.testing.assert_array_equal(lgc.ir.simulate(small, x.reshape(200, -1).numpy().astype(bool)), want)


def test_binarize_unflatten_model_and_lower_dispatch():
    torch.manual_seed(3)
    model = nn.Sequential(Binarize([0.3, 0.6], num_features=36), nn.Unflatten(1, (2, 6, 6)),
                          LogicConv2d(2, 4, 3, depth=3, residual_init=False), OrPool2d(2), nn.Flatten(),
                          LogicLayer(16, 20, implementation="python"), GroupSum(4, tau=1.5)).eval()
    x = torch.rand(150, 36)
    with torch.no_grad():
        want = torch.round(model(x) * 1.5).numpy().astype(np.int32)
    c = lower(model)
    assert c.input_encoder is not None and c.num_inputs == 72
    np.testing.assert_array_equal(lgc.ir.simulate(c, x.numpy()), want)
    c2 = lgc.lower(model)  # the front door is the same walker
    np.testing.assert_array_equal(lgc.ir.simulate(c2, x.numpy()), want)


def test_leading_flatten_before_binarize_lowers():
    torch.manual_seed(4)
    model = nn.Sequential(nn.Flatten(), Binarize([0.5], num_features=36), nn.Unflatten(1, (1, 6, 6)),
                          LogicConv2d(1, 4, 3, depth=2, residual_init=False), nn.Flatten(),
                          LogicLayer(64, 20, implementation="python"), GroupSum(4, tau=2.0)).eval()
    x = torch.rand(90, 1, 6, 6)
    with torch.no_grad():
        want = torch.round(model(x) * 2.0).numpy().astype(np.int32)
    np.testing.assert_array_equal(lgc.ir.simulate(lgc.lower(model), x.numpy()), want)


def test_lower_graph_errors():
    with pytest.raises(ValueError, match="input shape"):
        lower(nn.Sequential(LogicConv2d(2, 3, 3)))
    with pytest.raises(ValueError, match="unsupported"):
        lower(nn.Sequential(LogicConv2d(2, 3, 3, input_size=(5, 5)), nn.ReLU()))
    with pytest.raises(ValueError, match="in_dim"):
        lower(nn.Sequential(LogicConv2d(2, 3, 3, input_size=(5, 5)), nn.Flatten(), LogicLayer(10, 4)))


def test_compiled_conv_model_on_every_cpu_target():
    model = _model(7)
    c = lgc.optimize(lower(model), level=2)
    x = _bits(300, (2, 9, 8), 7).reshape(300, -1).numpy().astype(bool)
    want = lgc.ir.simulate(c, x)
    targets = [t for t in lgc.targets() if t != "cuda"]
    assert "numpy" in targets
    for t in targets:
        np.testing.assert_array_equal(lgc.compile(c, target=t, opt_level=0)(x), want, err_msg=f"target {t}")


def test_conv_model_verilog_export_simulates_equal(tmp_path):
    from lgc.backends import file_formats
    need("eda", None if "verilog" in file_formats() else "no verilog export backend yet")
    need("eda", None if shutil.which("iverilog") and shutil.which("vvp") else "iverilog/vvp not installed")
    c = lgc.optimize(lower(_model(11)), level=2).replace(head=None)
    x = _bits(64, (2, 9, 8), 11).reshape(64, -1).numpy().astype(bool)
    want = lgc.ir.simulate(c, x)
    v = tmp_path / "net.v"
    lgc.export(c, v, format="verilog")
    name = re.search(r"^\s*module\s+(\w+)", v.read_text(), re.M).group(1)
    (tmp_path / "in.txt").write_text("".join("".join("1" if b else "0" for b in row[::-1]) + "\n" for row in x))
    n, o = c.num_inputs, c.num_outputs
    (tmp_path / "tb.v").write_text(f"""module tb; reg [{n - 1}:0] mem [0:63]; reg [{n - 1}:0] x; wire [{o - 1}:0] y;
  {name} dut(.x(x), .y(y)); integer i;
  initial begin $readmemb("in.txt", mem); for (i = 0; i < 64; i = i + 1) begin x = mem[i]; #1 $display("%b", y); end end
endmodule
""")
    subprocess.run(["iverilog", "-o", "sim", "tb.v", "net.v"], cwd=tmp_path, check=True, capture_output=True)
    lines = subprocess.run(["vvp", "-n", "sim"], cwd=tmp_path, check=True, capture_output=True,
                           text=True).stdout.split()
    got = np.array([[int(ch) for ch in line[::-1]] for line in lines if set(line) <= {"0", "1"}], dtype=np.uint8)
    np.testing.assert_array_equal(got, want)


def test_cuda_conv_kernel_compiles_with_nvcc(tmp_path):
    from lgc.frontend.kernels import nvcc_path
    nvcc = nvcc_path()
    need("nvcc", None if nvcc else "nvcc not found")
    src = REPO / "cuda" / "logic_conv.cu"
    proc = subprocess.run([nvcc, "-c", "-arch=sm_80", str(src), "-o", str(tmp_path / "logic_conv.o")],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (tmp_path / "logic_conv.o").stat().st_size > 0


def test_cuda_conv_kernel_matches_cpu_on_gpu():
    need("gpu", None if torch.cuda.is_available() else "no CUDA device")
    geo = GEOMETRIES[1]
    layer = _conv(geo, "python")
    x = torch.rand(5, geo[0], geo[6], geo[7], dtype=torch.float64, requires_grad=True)
    y1 = layer(x)
    g = torch.randn_like(y1)
    gx1, gw1 = torch.autograd.grad(y1, (x, layer.weights), g)
    layer.cuda().implementation = "cuda"
    xc = x.detach().cuda().requires_grad_(True)
    y2 = layer(xc)
    gx2, gw2 = torch.autograd.grad(y2, (xc, layer.weights), g.cuda())
    torch.testing.assert_close(y2.cpu(), y1.detach(), rtol=0, atol=1e-12)
    torch.testing.assert_close(gx2.cpu(), gx1, rtol=0, atol=1e-10)
    torch.testing.assert_close(gw2.cpu(), gw1, rtol=0, atol=1e-10)


@pytest.mark.parametrize("last_pool", [True, False])
def test_logic_tree_net_builder_lowers_bit_exact(last_pool):
    from lgc.frontend.conv import logic_tree_net
    torch.manual_seed(5)
    model = logic_tree_net(3, 8, 2, thresholds=[0.3, 0.7], blocks=2, fc=(10, 5), residual_init=False,
                           implementation="python", last_pool=last_pool).eval()
    assert sum(isinstance(m, OrPool2d) for m in model) == (2 if last_pool else 1)
    assert model[-3].in_dim == 8 * (2 * 2 if last_pool else 4 * 4)   # block 2: 8 channels, pooled or not
    x = torch.rand(100, 3 * 8 * 8)
    with torch.no_grad():
        want = torch.round(model(x) * 10.0).numpy().astype(np.int32)
    np.testing.assert_array_equal(lgc.ir.simulate(lgc.lower(model), x.numpy()), want)


def test_conv_backward_takes_a_feature_major_gradient_through_the_parallel_transpose():
    """The gradient a fused logic layer hands back through a Flatten is the transpose of a
    feature-major [F, B] buffer; the conv backward makes it contiguous through the logic kernels'
    transpose: the same values as .contiguous(), for that layout and any other."""
    from lgc.frontend import conv_kernels, kernels
    need("cpu-kernel", kernels.cpu_kernel_unavailable())
    kernels.resolve("cpu", torch.zeros(1))
    fm = torch.randn(48 * 7 * 7, 128)
    t = fm.t().view(128, 48, 7, 7)  # what Flatten's backward gives for a feature-major gradient
    assert not t.is_contiguous()
    for u in (t, torch.randn(5, 3, 4, 4).transpose(1, 2), torch.randn(4, 6), torch.randn(2, 3, 4)[:, :, ::2]):
        got = conv_kernels._contiguous(u)
        assert got.is_contiguous() and torch.equal(got, u.contiguous())
