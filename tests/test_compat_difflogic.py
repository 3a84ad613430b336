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
    out = np.asarray(net.forward(x))
    assert out.dtype == np.int32 and np.array_equal(out, simulate(c, x))
    again = CompiledLogicNet.load(tmp_path / "net.lgc", num_classes=5, num_bits=64)
    assert np.array_equal(np.asarray(again(x)), out)
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
    assert np.array_equal(net2(x.reshape(200, 49).numpy()).numpy(), counts.numpy())


def _indices(layer):
    if hasattr(layer, "indices"):
        return layer.indices
    return layer.a, layer.b


# ---- the shared library, loaded in a separate process by plain ctypes ----

_CTYPES_SCRIPT = r'''
import ctypes, sys
import numpy as np
lib_path, x_path, out_path, num_bits = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
lib = ctypes.CDLL(lib_path)
dims = (ctypes.c_int64 * 4).in_dll(lib, "logic_gate_net_dims")
n_in, k = dims[0], dims[2]
x = np.load(x_path)                                   # uint8 [N, n_in], any nonzero byte true
assert x.shape[1] == n_in
scores = np.empty((len(x), k), np.int32)
lib.logic_gate_net_scores.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_void_p, ctypes.c_void_p]
lib.logic_gate_net_workspace_bytes.restype = ctypes.c_size_t
workspace = ctypes.create_string_buffer(lib.logic_gate_net_workspace_bytes())
rc = lib.logic_gate_net_scores(x.ctypes.data, len(x), scores.ctypes.data, workspace)
# difflogic's entry point: bool rows padded to whole blocks of num_bits, len = number of blocks
blocks = -(-len(x) // num_bits)
padded = np.zeros((blocks * num_bits, n_in), np.bool_)
padded[:len(x)] = x != 0
legacy = np.zeros((blocks * num_bits, k), np.int32)
lib.apply_logic_gate_net.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_size_t]
lib.apply_logic_gate_net(padded.ctypes.data, legacy.ctypes.data, blocks)
np.savez(out_path, rc=rc, scores=scores, legacy=legacy[:len(x)], lgc_imported="lgc" in sys.modules)
'''


def test_shared_library_is_real_and_runs_in_a_plain_ctypes_process(tmp_path):
    import shutil
    import subprocess
    import sys
    from conftest import need
    need("c-compiler", None if shutil.which("gcc") else "no gcc on PATH")
    c = random_layered_circuit(45, [120, 60], num_classes=3, tau=10.0, seed=4)
    lib = tmp_path / "x.so"
    net = CompiledLogicNet(c, num_bits=32).compile(opt_level=2, save_lib_path=lib)
    assert lib.read_bytes()[:4] == b"\x7fELF"
    header = (tmp_path / "x.h").read_text()
    assert "int logic_gate_net_scores(" in header and "void apply_logic_gate_net(" in header
    assert "apply_logic_gate_net" in net.get_c_code() and "logic_gate_net_scores_packed" in net.get_c_code()
    script = tmp_path / "plain.py"
    script.write_text(_CTYPES_SCRIPT)
    rng = np.random.default_rng(5)
    for n in (1, 63, 64, 65, 1000):
        x = (rng.random((n, 45)) < 0.5) * rng.integers(1, 256, size=(n, 45))   # non-canonical true bytes
        np.save(tmp_path / "x.npy", x.astype(np.uint8))
        subprocess.run([sys.executable, str(script), str(lib), str(tmp_path / "x.npy"), str(tmp_path / "out.npz"), "32"],
                       check=True, timeout=120)
        got = np.load(tmp_path / "out.npz")
        expect = simulate(c, x != 0)
        assert int(got["rc"]) == 0 and not bool(got["lgc_imported"])
        assert np.array_equal(got["scores"], expect) and np.array_equal(got["legacy"], expect)
    loaded = CompiledLogicNet.load(lib, 3, 32)                    # difflogic's positional call
    x = rng.random((300, 45)) < 0.5
    assert loaded.num_classes == 3 and np.array_equal(np.asarray(loaded.forward(x)), simulate(c, x))
    with pytest.raises(ValueError):
        CompiledLogicNet.load(lib, 4, 32)
    with pytest.raises(ValueError):
        loaded.forward(np.zeros((2, 44), bool))


def test_difflogic_script_runs_with_only_its_import_changed(tmp_path, monkeypatch):
    """The calls of difflogic's README and experiments/main.py + apply_compiled_net.py, verbatim
    in spirit (CPU instead of CUDA, tiny sizes), with `from difflogic import ...` replaced."""
    pytest.importorskip("torch")
    import shutil
    from conftest import need
    need("c-compiler", None if shutil.which("gcc") else "no gcc on PATH")
    monkeypatch.chdir(tmp_path)
    script = '''
import os
import numpy as np
import torch
from lgc.compat.difflogic import LogicLayer, GroupSum, PackBitsTensor, CompiledLogicNet

torch.manual_seed(0)
in_dim, k, l, class_count, tau = 64, 120, 3, 4, 10
llkw = dict(grad_factor=1.0, connections='unique')
logic_layers = [torch.nn.Flatten(), LogicLayer(in_dim=in_dim, out_dim=k, **llkw)]
for _ in range(l - 1):
    logic_layers.append(LogicLayer(in_dim=k, out_dim=k, implementation=None, **llkw))
model = torch.nn.Sequential(*logic_layers, GroupSum(class_count, tau))
total_num_neurons = sum(map(lambda x: x.num_neurons, logic_layers[1:]))
total_num_weights = sum(map(lambda x: x.num_weights, logic_layers[1:]))
assert total_num_neurons == total_num_weights == k * l
layer = logic_layers[1]
layer.indices = layer.indices[0].long(), layer.indices[1].long()     # difflogic's forward_python does this
loss_fn = torch.nn.CrossEntropyLoss()
optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
x, y = torch.rand(100, 8, 8), torch.randint(0, class_count, (100,))
loss = loss_fn(model(x), y); optimizer.zero_grad(); loss.backward(); optimizer.step()
model.train(mode=False)
with torch.no_grad():
    eval_out = model(x.round())
    packed_out = model(PackBitsTensor(x.reshape(x.shape[0], -1).round().bool()))
acc_eval = (eval_out.argmax(-1) == y).to(torch.float32).mean().item()
acc_packed = (packed_out.argmax(-1) == y).to(torch.float32).mean().item()
os.makedirs('lib', exist_ok=True)
save_lib_path = 'lib/{:08d}_{}.so'.format(0, 64)
compiled_model = CompiledLogicNet(model=model, num_bits=64, cpu_compiler='gcc', verbose=True)
compiled_model.compile(opt_level=1, save_lib_path=save_lib_path, verbose=True)
data = torch.nn.Flatten()(x.round()).bool().numpy()
output = compiled_model(data, verbose=True)
correct = (output.argmax(-1) == y).float().sum()
compiled_model = CompiledLogicNet.load(save_lib_path, 4, 64)
output2 = compiled_model.forward(data)
'''
    ns: dict = {}
    exec(compile(script, "difflogic_user_script.py", "exec"), ns)
    torch = ns["torch"]
    expect = torch.round(ns["eval_out"] * 10).to(torch.int32)
    assert isinstance(ns["output"], torch.Tensor) and ns["output"].dtype == torch.int32
    assert torch.equal(ns["output"], expect) and torch.equal(ns["output2"], expect)
    assert torch.equal(ns["packed_out"].cpu(), expect) and ns["acc_eval"] == ns["acc_packed"]
    assert (tmp_path / "lib" / "00000000_64.so").read_bytes()[:4] == b"\x7fELF"


def test_indices_assignment_keeps_state_dict_and_lowering_consistent():
    torch = pytest.importorskip("torch")
    import lgc
    from lgc.compat.difflogic import GroupSum, LogicLayer
    torch.manual_seed(1)
    layer = LogicLayer(16, 8, implementation=None)
    assert layer.implementation == "auto" and layer.num_neurons == layer.num_weights == 8
    a, b = torch.arange(8) % 16, (torch.arange(8) * 3 + 1) % 16
    layer.indices = (a, b)
    sd = layer.state_dict()
    assert torch.equal(sd["index_a"], a) and torch.equal(sd["index_b"], b)
    assert torch.equal(layer.indices[0], a)
    model = torch.nn.Sequential(layer, GroupSum(2, 1.0)).eval()
    c = lgc.lower(model)
    assert np.array_equal(c.a[:8], a.numpy()) and np.array_equal(c.b[:8], b.numpy())
    x = torch.rand(50, 16) > 0.5
    assert np.array_equal(simulate(c, x.numpy()), torch.round(model(x.float())).to(torch.int32).numpy())
    for bad in ((a,), (a, b[:3]), (a, b + 16), "ab"):
        with pytest.raises(ValueError):
            layer.indices = bad
    assert torch.equal(layer.index_b, b)   # a refused assignment leaves the wiring alone


def test_packbits_group_sum_takes_difflogic_k():
    torch = pytest.importorskip("torch")
    from lgc.compat.difflogic import GroupSum, LogicLayer, PackBitsTensor
    x = torch.rand(70, 12) > 0.5
    counts = PackBitsTensor(x).group_sum(3)
    assert torch.equal(counts, x.reshape(70, 3, 4).sum(-1).to(torch.int32))
    with pytest.raises(ValueError):
        PackBitsTensor(x).group_sum(5)
    torch.manual_seed(2)
    l1, l2 = LogicLayer(12, 30), LogicLayer(30, 30)
    model = torch.nn.Sequential(l1, l2, GroupSum(3, 1.0)).eval()
    chained = PackBitsTensor(x).then(l1).then(l2).group_sum(3)       # difflogic's GroupSum passes self.k
    assert torch.equal(chained, torch.round(model(x.float())).to(torch.int32))


def test_load_reads_a_library_with_only_difflogics_symbol(tmp_path):
    """A .so difflogic compiled exports only apply_logic_gate_net (len = blocks of num_bits samples);
    load() runs it as difflogic's forward does, padding the batch. Here: such a library emitted with
    another symbol prefix, so lgc's own symbols are absent."""
    import shutil
    from conftest import need
    from lgc.backends import c_source
    need("c-compiler", None if shutil.which("gcc") else "no gcc on PATH")
    c = random_layered_circuit(30, [80, 40], num_classes=4, tau=10.0, seed=6)
    c_source.build_shared_library(c, tmp_path / "legacy.so", prefix="other", difflogic_num_bits=16)
    with pytest.raises(ValueError):
        CompiledLogicNet.load(tmp_path / "legacy.so")        # without num_classes nothing says the shape
    net = CompiledLogicNet.load(tmp_path / "legacy.so", 4, 16)
    x = np.random.default_rng(7).random((77, 30)) < 0.5
    assert np.array_equal(np.asarray(net(x)), simulate(c, x))
