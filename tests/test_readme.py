"""The README's Python example runs as written."""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

import numpy as np
from PIL import Image

README = Path(__file__).resolve().parents[1] / "README.md"


def python_blocks(text: str) -> list[str]:
    """The fenced ```python blocks of a Markdown text, in order."""
    return re.findall(r"^```python\n(.*?)^```", text, flags=re.S | re.M)


def test_readme_has_a_python_example():
    assert python_blocks(README.read_text(encoding="utf-8"))


def test_readme_python_example_runs():
    for block in python_blocks(README.read_text(encoding="utf-8")):
        exec(compile(block, str(README), "exec"), {"__name__": "__readme__"})


def toy_commands(text: str) -> list[list[str]]:
    """The command lines of the README's toy-set block, comments dropped, split like a shell."""
    block = re.search(r"<!-- toy-commands.*?-->\n(.*?)<!-- /toy-commands -->", text, flags=re.S)
    assert block, "README lost its toy-commands block"
    return [
        shlex.split(line, comments=True) for line in block.group(1).splitlines() if line.strip()
    ]


def test_readme_toy_set_commands_run_as_written(tmp_path, monkeypatch, capsys):
    """Every "Your own data" command on the 10-image toy set, in the README's order."""
    from affseg.cli import main
    from affseg.data import toy

    monkeypatch.chdir(tmp_path)
    cmds = toy_commands(README.read_text(encoding="utf-8"))
    assert [c[:2] for c in cmds][:1] == [["python", "-m"]]
    for argv in cmds:
        if argv[:3] == ["python", "-m", "affseg.data.toy"]:
            assert toy.main(argv[3:]) == 0
        else:
            assert argv[0] == "affseg", argv
            assert main([*argv[1:], "--no-progress"] if argv[1] == "train" else argv[1:]) == 0
    out = capsys.readouterr().out
    assert "K = 4" in out and "sky" in out  # affseg info
    sup = json.loads((tmp_path / "runs/toy_sup/record.json").read_text())
    assert sup["val"]["miou"] > 0.9  # the toy classes are separable from masks
    scores = json.loads((tmp_path / "toy_val.json").read_text())
    assert scores["classes"] == ["sky", "grass", "sand", "ball"] and 0 <= scores["miou"] <= 100
    maps = sorted((tmp_path / "toy_sem").glob("*.classes.png"))
    assert [p.name for p in maps] == ["toy008.classes.png", "toy009.classes.png"]
    assert all(np.asarray(Image.open(p)).max() < 4 for p in maps)
