"""The README's "In your own training loop" block runs as written (with fewer epochs)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch

README = Path(__file__).resolve().parents[1] / "README.md"
SECTION = "## In your own training loop"


def _loop_code() -> str:
    text = README.read_text(encoding="utf-8")
    section = text[text.index(SECTION) :]
    section = section[: section.index("\n## ", len(SECTION))]
    blocks = re.findall(r"```python\n(.*?)```", section, flags=re.DOTALL)
    assert len(blocks) == 1, "the section must hold exactly one python block"
    return blocks[0]


def _run(code: str, capsys: pytest.CaptureFixture[str]) -> float:
    """Run ``code`` with one epoch instead of the README's count; return its test accuracy."""
    assert code.count("epochs = 10\n") == 1
    code = code.replace("epochs = 10\n", "epochs = 1\n")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        exec(compile(code, str(README), "exec"), {"__name__": "__readme__"})
    finally:
        torch.set_num_threads(threads)
    printed = capsys.readouterr().out
    match = re.search(r"test accuracy (\d\.\d+)", printed)
    assert match, printed
    return float(match.group(1))


def test_readme_training_loop_runs_as_written(capsys: pytest.CaptureFixture[str]) -> None:
    # static fusion on mfeat after one epoch: far above chance (0.1)
    assert _run(_loop_code(), capsys) > 0.8


def test_readme_loop_runs_with_every_method_its_comment_names(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code = _loop_code()
    line = next(li for li in code.splitlines() if li.startswith('method = build_method("static"'))
    others = re.findall(r'"([\w+~]+)"', line.split("#", 1)[1])
    assert others, line
    for name in others:
        accuracy = _run(code.replace('build_method("static"', f'build_method("{name}"'), capsys)
        assert accuracy > 0.3, name  # one epoch, chance is 0.1
