"""Convolutional logic models in checkpoints and the CLI: config round trip, `lgc train --arch conv`."""
import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from lgc.cli.main import main  # noqa: E402
from lgc.frontend import LogicLayer, build_model, load_checkpoint, lower, model_config, save_checkpoint  # noqa: E402
from lgc.frontend.conv import LogicConv2d, OrPool2d, logic_tree_net  # noqa: E402
from lgc.ir import simulate  # noqa: E402
from lgc.training import conv_model_config  # noqa: E402


def _small_conv(seed=0):
    torch.manual_seed(seed)
    cfg = conv_model_config((1, 8, 8), {"thresholds": [0.3, 0.6], "train_passthrough": False}, 4,
                            channels=2, depth=2, blocks=2, fc=[40], tau=3.0, residual_init=2.0, padding=1)
    return build_model(cfg)


@pytest.mark.parametrize("make", [
    _small_conv,
    lambda: logic_tree_net(3, 8, 2, blocks=2, depth=2, fc=(10, 10), num_classes=10),   # [N, C, H, W] input
    lambda: torch.nn.Sequential(torch.nn.Unflatten(1, (2, 6, 6)), LogicConv2d(2, 3, 3, depth=1, stride=2),
                                OrPool2d(2, padding=1), torch.nn.Flatten()),
])
def test_conv_checkpoint_round_trip_is_exact(make, tmp_path):
    model = make()
    with torch.no_grad():   # train a little away from the init so logits are not the constructor's
        for p in model.parameters():
            p.add_(torch.randn_like(p))
    cfg = model_config(model)
    json.dumps(cfg)        # plain data
    path = tmp_path / "m.pt"
    save_checkpoint(model, path, extra={"note": "conv"})
    back, extra = load_checkpoint(path, with_extra=True)
    assert extra == {"note": "conv"} and model_config(back) == cfg and str(back) == str(model)
    sd, sd2 = model.state_dict(), back.state_dict()
    assert list(sd) == list(sd2) and any("leaf_channel" in k for k in sd)
    assert all(torch.equal(sd[k], sd2[k]) for k in sd)
    first = next(m for m in model if not isinstance(m, torch.nn.Unflatten))
    shape = (1, 3, 8, 8) if isinstance(first, LogicConv2d) and first.input_size else (1, cfg["in_dim"])
    x = torch.rand(64, *shape[1:])
    if isinstance(model[0], torch.nn.Unflatten):
        x = (x > 0.5).float()
    model.eval()
    with torch.no_grad():
        assert torch.equal(model(x), back(x))


def test_conv_checkpoint_lowers_like_the_model(tmp_path):
    model = _small_conv(1).eval()
    save_checkpoint(model, tmp_path / "m.pt")
    back = load_checkpoint(tmp_path / "m.pt")
    x = np.random.default_rng(0).random((50, 64), dtype=np.float32)
    with torch.no_grad():
        ref = torch.round(back(torch.from_numpy(x)) * 3.0).numpy().astype(np.int32)
    assert np.array_equal(simulate(lower(back), x), ref)
    assert main(["inspect", str(tmp_path / "m.pt")]) == 0


def test_build_model_rejects_bad_conv_configs():
    cfg = model_config(_small_conv())
    bad = dict(cfg, layers=[{"type": "unflatten", "shape": [2, 8, 9]}, *cfg["layers"][1:]])
    with pytest.raises(ValueError, match="unflatten"):
        build_model(bad)
    bad = dict(cfg, layers=[l for l in cfg["layers"] if l != {"type": "flatten"}])
    with pytest.raises(ValueError, match="flatten"):
        build_model(bad)
    bad = dict(cfg, layers=[cfg["layers"][0], dict(cfg["layers"][1], colour="red"), *cfg["layers"][2:]])
    with pytest.raises(ValueError, match="colour"):
        build_model(bad)
    with pytest.raises(ValueError, match="unknown type"):
        build_model(dict(cfg, layers=[{"type": "attention"}]))


def test_train_arch_conv_compiles_exactly(tmp_path):
    out = tmp_path / "run"
    argv = ["train", "--dataset", "digits", "--arch", "conv", "--conv-channels", "2", "--conv-depth", "2",
            "--conv-blocks", "2", "-k", "40", "-l", "1", "-bs", "32", "-ni", "6", "-ef", "3", "--compile",
            "--no-progress", "--threads", "1", "--out", str(out)]
    assert main(argv) == 0
    final = json.loads((out / "final.json").read_text())
    assert final["compiled_matches"] and final["compiled_predictions_equal"]
    assert final["gates_before"] > 40 and final["steps"] == 6
    model = load_checkpoint(out / "best.pt")
    assert any(isinstance(m, LogicConv2d) for m in model) and any(isinstance(m, OrPool2d) for m in model)
    assert main(["compile", str(out / "best.pt"), "-o", str(tmp_path / "net.lgc")]) == 0
    assert (tmp_path / "net.lgc").stat().st_size > 0
    assert main(argv[:-1] + [str(out), "--resume", "-ni", "9"]) == 0   # resume keeps the conv architecture
    final = json.loads((out / "final.json").read_text())
    assert final["steps"] == 9 and final["compiled_matches"]
    assert main(["train", "--dataset", "digits", "--arch", "conv", "--conv-channels", "2", "--conv-depth", "1",
                 "-k", "20", "-l", "1", "-bs", "32", "-ni", "1", "--no-progress", "--out", str(tmp_path / "nc")]) == 0
    gates = json.loads((tmp_path / "nc" / "final.json").read_text())["gates"]
    assert gates == lower(load_checkpoint(tmp_path / "nc" / "best.pt")).num_gates > 20   # conv trees counted


def test_train_arch_conv_refuses_tabular_data(tmp_path, capsys):
    assert main(["train", "--dataset", "iris", "--arch", "conv", "-k", "30", "-l", "1", "-ni", "2",
                 "--no-progress", "--out", str(tmp_path / "a")]) == 2
    assert "needs an image dataset" in capsys.readouterr().err
    assert main(["train", "--dataset", "iris", "--arch", "conv", "--baseline", "-k", "30", "-l", "1", "-ni", "2",
                 "--no-progress", "--out", str(tmp_path / "c")]) == 2
    assert main(["train", "--dataset", "digits", "--arch", "conv", "--conv-blocks", "4", "--conv-padding", "0",
                 "-k", "40", "-l", "1", "-ni", "2", "--no-progress", "--out", str(tmp_path / "b")]) == 2
    assert "too small" in capsys.readouterr().err


def test_conv_config_without_last_pool_lowers_exactly():
    """``last_pool=False``: one OR pool fewer, the FC layer reads the last block's unpooled bits, and
    the lowered circuit equals the eval-mode model."""
    torch.manual_seed(3)
    common = dict(channels=2, depth=2, blocks=2, fc=[40], tau=3.0, residual_init=2.0, padding=1)
    binarize = {"thresholds": [0.3, 0.6], "train_passthrough": False}
    pooled = build_model(conv_model_config((1, 8, 8), binarize, 4, **common))
    unpooled = build_model(conv_model_config((1, 8, 8), binarize, 4, last_pool=False, **common))
    assert [sum(isinstance(x, OrPool2d) for x in m) for m in (pooled, unpooled)] == [2, 1]
    fc_inputs = [next(x for x in m if isinstance(x, LogicLayer)).in_dim for m in (pooled, unpooled)]
    assert fc_inputs == [8 * 2 * 2, 8 * 4 * 4]   # block 2's 8 channels at 2x2 pooled, 4x4 unpooled
    with torch.no_grad():
        for p in unpooled.parameters():
            p.add_(torch.randn_like(p))
    x = torch.rand(64, 64)
    unpooled.eval()
    with torch.no_grad():
        ref = torch.round(unpooled(x) * 3.0).numpy().astype(np.int64)
    assert np.array_equal(simulate(lower(unpooled), x.numpy()).astype(np.int64), ref)


def test_train_conv_no_last_pool_flag(tmp_path, capsys):
    out = tmp_path / "run"
    argv = ["train", "--dataset", "digits", "--arch", "conv", "--conv-channels", "2", "--conv-depth", "1",
            "--conv-blocks", "1", "--conv-no-last-pool", "-k", "40", "-l", "1", "-bs", "32", "-ni", "2",
            "--compile", "--no-progress", "--threads", "1", "--out", str(out)]
    assert main(argv) == 0
    assert json.loads((out / "final.json").read_text())["compiled_matches"]
    model = load_checkpoint(out / "best.pt")
    assert not any(isinstance(m, OrPool2d) for m in model)
    # resume keeps the architecture: a run without the flag is refused, naming the option
    assert main([a for a in argv if a != "--conv-no-last-pool"] + ["--resume", "-ni", "3"]) != 0
    assert "conv_last_pool: run has False, now True" in capsys.readouterr().err
