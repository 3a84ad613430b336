"""The README's snippets run as written: its Python blocks in order in one fresh interpreter (in a
temporary folder; they train at small sizes), and every `lgc ...` line of its shell blocks parses
with the real command-line parser (options and subcommands exist)."""
from __future__ import annotations

import os
import pathlib
import re
import shlex
import subprocess
import sys

import pytest

from lgc.cli.main import build_parser

README = pathlib.Path(__file__).resolve().parents[1] / "README.md"


def _blocks(lang: str) -> list[str]:
    return re.findall(rf"```{lang}\n(.*?)```", README.read_text(), flags=re.S)


def test_readme_python_blocks_run(tmp_path):
    code = "\n".join(_blocks("python"))
    assert "input_shape=" in code and 'lgc.compile("best.pt")' in code
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(README.parent), os.environ.get("PYTHONPATH", "")]))
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True,
                         timeout=900)
    assert out.returncode == 0, out.stderr[-4000:]
    assert "accuracy" in out.stdout and (tmp_path / "net.v").exists() and (tmp_path / "best.pt").exists()


def _commands() -> list[str]:
    lines, cmds = [], []
    for block in _blocks("bash"):
        for line in block.replace("\\\n", " ").splitlines():
            line = line.split(" #")[0].strip()
            if line.startswith("lgc "):
                cmds.append(line)
    return cmds


@pytest.mark.parametrize("command", _commands())
def test_readme_commands_parse(command):
    try:
        args = build_parser().parse_args(shlex.split(command)[1:])
    except SystemExit as e:
        pytest.fail(f"README command does not parse (exit {e.code}): {command}")
    assert getattr(args, "_run", None) is not None
