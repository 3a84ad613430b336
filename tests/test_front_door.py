"""The front door without traps: input shapes, checkpoints through lgc.load/compile, one optimisation
level default, optional dependencies named by their extra, the deploy path without torch, the
frontend walker's registry, and the drawing defaults."""
from __future__ import annotations

import importlib
import inspect
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch
from torch import nn

import lgc
from lgc._optional import EXTRAS, MissingDependency, require
from lgc.api import DEFAULT_OPT_LEVEL
from lgc.cli.main import main
from lgc.frontend import GroupSum, LogicLayer, build_model, model_config, save_checkpoint
from lgc.frontend.conv import LogicConv2d, OrPool2d
from lgc.frontend.walk import kind_of, kind_named
from lgc.ir import Circuit, random_layered_circuit, simulate


def conv_model(seed: int = 0) -> nn.Sequential:
    """Starts with a LogicConv2d that does not know its input size: runs on any 1 x H x W image."""
    torch.manual_seed(seed)
    model = nn.Sequential(LogicConv2d(1, 4, 3, depth=2, padding=1, implementation="python", residual_init=False),
                          OrPool2d(2), nn.Flatten(), LogicLayer(4 * 6 * 6, 30, implementation="python"),
                          GroupSum(3, tau=2.0))
    return model.eval()


def test_conv_model_through_the_front_door_with_input_shape():
    model = conv_model()
    with pytest.raises(ValueError, match="input_shape"):
        lgc.lower(model)
    x = (torch.rand(70, 1, 12, 12) > 0.5).float()
    circuit = lgc.lower(model, input_shape=(1, 12, 12))
    assert circuit == lgc.lower(model, input_shape=x)          # an example batch, as torch.export takes
    assert circuit.meta["input_shape"] == [1, 12, 12] and circuit.num_inputs == 144
    with torch.no_grad():
        want = torch.round(model(x) * 2.0).to(torch.int32).numpy()
    bits = x.reshape(70, -1).numpy().astype(bool)
    np.testing.assert_array_equal(simulate(circuit, bits), want)
    np.testing.assert_array_equal(lgc.compile(model, target="numpy", input_shape=(1, 12, 12))(bits), want)
    with pytest.raises(ValueError, match=r"module 0 \(LogicConv2d\).*\[1, H, W\]"):
        lgc.lower(model, input_shape=(2, 12, 12))
    with pytest.raises(ValueError, match="PyTorch models only"):
        lgc.compile(circuit, target="numpy", input_shape=(1, 12, 12))


def test_checkpoint_through_load_and_compile(tmp_path, capsys):
    model = conv_model(1)
    model[0].input_size = (12, 12)          # a checkpointable conv model states its input size
    path = tmp_path / "best.pt"
    save_checkpoint(model, path)
    circuit = lgc.lower(model)
    assert lgc.load(path) == circuit
    x = np.random.default_rng(0).random((40, 144)) < 0.5
    want = simulate(circuit, x)
    np.testing.assert_array_equal(lgc.compile(str(path), target="numpy")(x), want)
    np.testing.assert_array_equal(lgc.compile(path, target="numpy", opt_level=0)(x), want)
    assert main(["inspect", str(path), "--json"]) == 0 and f'"num_gates": {circuit.num_gates}' in capsys.readouterr().out
    (tmp_path / "other.pt").write_bytes(b"no")
    with pytest.raises(ValueError, match="not a readable lgc checkpoint"):
        lgc.load(tmp_path / "other.pt")


def test_one_optimisation_level_default(tmp_path):
    for fn in (lgc.compile, lgc.export, lgc.optimize):
        assert inspect.signature(fn).parameters["opt_level"].default == DEFAULT_OPT_LEVEL, fn.__name__
    from lgc.cli.main import build_parser
    parser = build_parser()
    for cmd in ("compile", "export", "bench"):
        args = parser.parse_args([cmd, "example", "-o", "x.lgc"] if cmd != "bench" else [cmd])
        assert args.opt_level == DEFAULT_OPT_LEVEL, cmd
    c = random_layered_circuit(12, [40, 30], num_classes=3, seed=4)
    lgc.export(c, tmp_path / "api.txt")
    assert main(["export", str(tmp_path / "api.txt"), "-o", str(tmp_path / "cli.txt"), "-O", "0"]) == 0
    # the API's default and the CLI's default write the same netlist
    lgc.export(c, tmp_path / "api.lgc", opt_level=0)
    assert main(["export", str(tmp_path / "api.lgc"), "-o", str(tmp_path / "cli2.txt")]) == 0
    assert (tmp_path / "api.txt").read_text() == (tmp_path / "cli2.txt").read_text()
    assert lgc.load(tmp_path / "api.txt") == lgc.optimize(c)
    assert lgc.optimize(c, level=1) == lgc.optimize(c, 1)      # the older keyword still works


def test_require_names_the_extra():
    assert require("numpy", extra="plot") is np
    with pytest.raises(MissingDependency, match=r"lgc plot needs no_such_mod_lgc.*pip install 'lgc\[plot\]'"):
        require("no_such_mod_lgc", extra="plot", purpose="lgc plot")
    with pytest.raises(ValueError, match="unknown extra"):
        require("numpy", extra="nope")
    text = open("pyproject.toml").read() if __import__("os").path.exists("pyproject.toml") else ""
    for extra in EXTRAS:
        assert not text or f"\n{extra} = [" in text, f"pyproject.toml lacks the extra {extra!r}"


@pytest.mark.parametrize("argv, module, extra", [
    (["plot", "RUN"], "matplotlib", "plot"),
    (["inspect", "example", "--draw", "OUT/cone.png"], "matplotlib", "plot"),
    (["demo", "-ni", "1"], "sklearn", "train"),
])
def test_cli_missing_optional_dependency_is_one_line_before_work(argv, module, extra, tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, module, None)       # import fails as if not installed
    argv = [a.replace("RUN", str(tmp_path)).replace("OUT", str(tmp_path)) for a in argv]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"pip install 'lgc[{extra}]'" in err[0], err
    assert not any(tmp_path.iterdir())                    # nothing was trained or drawn


def test_cli_names_the_extra_of_any_missing_optional_module(monkeypatch, capsys):
    cli_main = importlib.import_module("lgc.cli.main")

    def needs_torch(args):
        import torch_not_installed_here  # noqa: F401  (stands for torch on a deploy-only install)
    monkeypatch.setitem(sys.modules, "torch_not_installed_here", None)
    monkeypatch.setitem(EXTRAS, "train", (*EXTRAS["train"], "torch_not_installed_here"))
    parser = cli_main.build_parser()
    monkeypatch.setattr(cli_main, "build_parser", lambda: parser)
    for action in parser._subparsers._group_actions[0].choices.values():
        action.set_defaults(_run=needs_torch)
    assert cli_main.main(["inspect", "example"]) == 2
    assert "pip install 'lgc[train]'" in capsys.readouterr().err


def test_deploy_path_never_imports_torch(tmp_path):
    """import lgc, load a .lgc, compile for numpy/c/llvm/cpu, run: with torch blocked."""
    c = random_layered_circuit(20, [64, 30], num_classes=3, seed=1)
    lgc.ir.save(c, tmp_path / "net.lgc")
    x = np.random.default_rng(2).random((9, 20)) < 0.5
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "want.npy", simulate(lgc.optimize(c), x))
    code = textwrap.dedent(f"""
        import sys
        sys.modules["torch"] = None                # any import of torch now raises ImportError
        import numpy as np, lgc
        x, want = np.load({str(tmp_path / 'x.npy')!r}), np.load({str(tmp_path / 'want.npy')!r})
        targets = [t for t in ("numpy", "c", "llvm", "cpu") if t in lgc.targets()]
        assert "numpy" in targets
        for t in targets:
            net = lgc.compile({str(tmp_path / 'net.lgc')!r}, target=t)
            assert (net(x) == want).all(), t
            net.save({str(tmp_path)!r} + "/c.lgc")
            assert (lgc.load({str(tmp_path)!r} + "/c.lgc")(x) == want).all(), t
        try:
            lgc.load("best.pt")
        except ImportError as e:
            assert "lgc[train]" in str(e), e
        else:
            raise AssertionError("a .pt checkpoint loaded without torch")
        print("ok", targets)
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0 and out.stdout.startswith("ok"), out.stderr


def test_every_module_kind_is_registered_and_round_trips():
    model = nn.Sequential(nn.Flatten(), lgc.frontend.Binarize([0.3, 0.6]), nn.Unflatten(1, (2, 6, 6)),
                          LogicConv2d(2, 3, 3, depth=2, implementation="python"), OrPool2d(2), nn.Flatten(),
                          LogicLayer(12, 6, implementation="python"), GroupSum(2))
    for m in model:
        kind = kind_of(m)
        assert kind is not None and kind_named(kind.name) is kind, type(m).__name__
    cfg = model_config(model)
    assert model_config(build_model(cfg)) == cfg
    rebuilt = build_model(cfg)
    rebuilt.load_state_dict(model.state_dict())
    assert lgc.lower(rebuilt) == lgc.lower(model)
    with pytest.raises(ValueError, match="unsupported module 1: ReLU"):
        lgc.lower(nn.Sequential(LogicLayer(4, 4), nn.ReLU()))


def test_compiled_net_html_and_draw_default(tmp_path):
    c = Circuit(3, [15, 6, 0], [0, 0, 0], [0, 1, 0], [3, 5, 4, 0])   # outputs: TRUE, FALSE, XOR, input
    from lgc.ir.draw import interesting_output
    assert interesting_output(c) == 4
    assert interesting_output(c.replace(outputs=np.array([0, 3]))) == 3
    net = lgc.compile(c, target="numpy", opt_level=0)
    html = net._repr_html_()
    assert "numpy" in html and "<table" in html.lower()
    assert isinstance(net, lgc.backends.CompiledNet) and "net(x)" in lgc.backends.CompiledNet.__doc__
