"""The README's Python snippet runs as printed, and uses only the public API."""

from __future__ import annotations

import re
import textwrap
from pathlib import Path

README = Path(__file__).parent.parent / "README.md"


def python_snippet() -> str:
    text = README.read_text()
    section = text[text.index("## From Python"):]
    section = section[:section.index("\n## ", 3)]
    blocks = re.findall(r"((?:^    .*\n|^\n)+)", section, flags=re.M)
    return textwrap.dedent(max(blocks, key=len))


def test_readme_python_snippet_runs(capsys):
    code = python_snippet()
    assert "import torchbragg as tb" in code
    assert "cli" not in code and "precedence" not in code
    namespace: dict = {}
    exec(compile(code, "README.md", "exec"), namespace)  # noqa: S102 - our own README
    assert namespace["image"].shape == (64, 64)
    assert float(namespace["image"].sum()) > 0
    assert namespace["d"].grad is not None and float(namespace["d"].grad) != 0
    assert capsys.readouterr().out.strip()


def test_api_doc_panel_snippet_runs():
    """docs/api.md's multi-panel snippet runs as printed."""
    text = (Path(__file__).parent.parent / "docs" / "api.md").read_text()
    section = text[text.index("## Multi-panel detectors"):]
    code = re.search(r"```python\n(.*?)```", section, flags=re.S).group(1)
    namespace: dict = {}
    exec(compile(code, "api.md", "exec"), namespace)  # noqa: S102 - our own docs
    images = namespace["images"]
    assert sorted(images) == ["s0f0", "s0f1", "s1f0", "s1f1"]
    assert all(im.shape == (32, 32) for im in images.values())
    assert float(namespace["corner"].grad.abs().sum()) > 0
    assert namespace["waves_A"].shape == (8,)
