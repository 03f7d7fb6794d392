"""The README's examples that claim to run do run: each code block after a ``<!-- readme-example: NAME -->``
marker is executed as written, in a scratch folder."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"
EXAMPLES = dict(re.findall(r"<!-- readme-example: (\S+) -->\n```python\n(.*?)```", README.read_text(), re.S))


def test_the_readme_marks_its_executable_examples():
    assert "byo" in EXAMPLES


@pytest.mark.parametrize("name", sorted(EXAMPLES))
def test_a_readme_example_runs_as_written(name, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    code = EXAMPLES[name]
    assert len(code.strip().splitlines()) <= 26, "a README example stays short"
    exec(compile(code, f"README.md:{name}", "exec"), {"__name__": "readme_example"})
    printed = capsys.readouterr().out
    if name == "byo":
        before, after = (float(v) for v in re.match(r"([\d.]+) -> ([\d.]+), \d+ bytes", printed).groups())
        assert after > 0.85 and before - after < 0.05  # compressed, and still a digits classifier
        assert (tmp_path / "digits-small.onnx").is_file()
