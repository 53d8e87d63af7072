from pathlib import Path

import pytest


@pytest.fixture
def write_text(tmp_path):
    """Write a small input file and return its path."""

    def write(name: str, text: str | bytes) -> Path:
        path = tmp_path / name
        path.write_bytes(text if isinstance(text, bytes) else text.encode())
        return path

    return write
