"""The README's Python examples run as written (as constriction runs its doc examples), in a
folder holding the `in.mp4` they start from, with the shipped model on the CPU."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from clips import make_clip

README = Path(__file__).resolve().parents[1] / "README.md"


def python_blocks(text: str) -> list[str]:
    return re.findall(r"```python\n(.*?)```", text, flags=re.S)


def test_readme_has_python_examples():
    assert python_blocks(README.read_text())


@pytest.mark.parametrize("index", range(len(python_blocks(README.read_text()))))
def test_readme_example_runs(index, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("VTOKEN_MODEL_PATH", raising=False)  # the shipped model, as a user has it
    make_clip(tmp_path / "in.mp4", frames=9, size=(64, 48))
    code = python_blocks(README.read_text())[index]
    exec(compile(code, f"README.md python block {index}", "exec"), {"__name__": "readme"})
