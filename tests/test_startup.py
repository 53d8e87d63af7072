"""Start-up stays light: help and option errors without torch, numba only for bulk draws.

Each check runs in a fresh interpreter (this one has torch loaded already) and reports which
heavy modules the command imported.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

PROBE = """
import contextlib, io, json, sys
from torchbragg.cli.main import main
with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
    status = main(sys.argv[1:])
print(json.dumps({"status": status, "torch": "torch" in sys.modules,
                  "numba": "numba" in sys.modules}))
"""


def _imports(args: list[str], cwd) -> dict:
    out = subprocess.run([sys.executable, "-c", PROBE, *args], cwd=cwd, capture_output=True,
                         text=True, timeout=120, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("args, status", [
    (["--help"], 0),
    (["-cel", "100", "100", "100", "90", "90", "90"], 2),  # misspelled option
    (["-cell", "100", "100", "100", "90", "90", "90"], 9),  # no structure factors: usage
    (["-default_F", "1", "-cell", "1", "1", "1", "90", "90", "90", "--dtype", "half"], 2),
    (["-default_F", "1", "-cell", "1", "1", "1", "90", "90", "90", "--kernel", "fast"], 2),
])
def test_help_and_usage_errors_do_not_import_torch(args, status, tmp_path):
    seen = _imports(args, tmp_path)
    assert seen == {"status": status, "torch": False, "numba": False}


def test_a_still_renders_without_numba(tmp_path):
    args = ("-cell 100 100 100 90 90 90 -default_F 100 -lambda 6.2 -N 5 -distance 100 "
            "-detpixels 32 -floatfile f.bin -nonoise -noprogress --kernel reference").split()
    seen = _imports(args, tmp_path)
    assert seen == {"status": 0, "torch": True, "numba": False}
    assert (tmp_path / "f.bin").stat().st_size == 32 * 32 * 4


def test_mosaic_domains_draw_without_numba(tmp_path):
    args = ("-cell 100 100 100 90 90 90 -default_F 100 -lambda 6.2 -N 5 -distance 100 "
            "-detpixels 16 -mosaic 1 -mosaic_dom 10 -floatfile f.bin -nonoise -noprogress "
            "--kernel reference").split()
    assert _imports(args, tmp_path)["numba"] is False


def test_noise_uses_the_compiled_generators(tmp_path):
    args = ("-cell 100 100 100 90 90 90 -default_F 100 -lambda 6.2 -N 5 -distance 100 "
            "-detpixels 16 -noisefile n.img -seed 5 -noprogress --kernel reference").split()
    assert _imports(args, tmp_path)["numba"] is True


def test_compile_with_another_kernel_is_a_usage_error(tmp_path):
    args = ["-default_F", "1", "-cell", "1", "1", "1", "90", "90", "90", "--compile",
            "--kernel", "reference"]
    assert _imports(args, tmp_path) == {"status": 2, "torch": False, "numba": False}
