"""torchbragg reproduces the C nanoBragg's images on every golden case.

Each case runs in-process through ``torchbragg.cli.main.main`` in a fresh working folder with
the golden ``inputs/`` linked in, exactly as the project's parity tool runs the console command,
and is held to the same thresholds: ``max_rel <= 1e-5`` on the float image, identical SMV
int/noise pixels, identical PGM bytes. What it prints is the C program's stdout, line for line.
These runs take the reference path (``--kernel reference``); test_fused_kernel.py holds the
compiled kernel to the same images.
"""

from __future__ import annotations

import numpy as np
import pytest

from golden_cases import (
    CASES,
    MAX_REL,
    golden_bytes,
    golden_stdout,
    max_rel,
    run_case,
    smv_pixels,
)

REFERENCE = ("--kernel", "reference")

# cases taking more than ~10 s in-process on 2 CPU cores run only with `-m slow`; none does
# today (the slowest, xtal_dims with 22x22 oversampling, takes 3-8 s)
SLOW: set[str] = set()


def _params(kinds: tuple[str, ...] = ()) -> list:
    return [pytest.param(cid, id=cid, marks=[pytest.mark.slow] if cid in SLOW else [])
            for cid, case in CASES.items()
            if not kinds or any(k in case["outputs"] for k in kinds)]


def _ran(case_id, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    run = run_case(case_id, tmp_path, REFERENCE)
    for i, result in enumerate(run.results):
        assert result.status == 0, f"run {i + 1} exited {result.status}: {result.stderr.strip()}"
    return run


@pytest.mark.parametrize("case_id", _params())
def test_float_image_matches_c_program(case_id, tmp_path, monkeypatch):
    run = _ran(case_id, tmp_path, monkeypatch)
    c_image = np.frombuffer(golden_bytes(CASES[case_id]["outputs"]["float"]), dtype="<f4")
    assert "float" in run.outputs, "no float image written"
    image = np.frombuffer(run.outputs["float"], dtype="<f4")
    assert image.shape == c_image.shape
    assert np.isfinite(image).all()
    assert max_rel(c_image, image) <= MAX_REL


@pytest.mark.parametrize("case_id", _params(("int", "noise")))
def test_smv_pixels_identical_to_c_program(case_id, tmp_path, monkeypatch):
    run = _ran(case_id, tmp_path, monkeypatch)
    for kind in ("int", "noise"):
        if kind not in CASES[case_id]["outputs"]:
            continue
        assert kind in run.outputs, f"no {kind} image written"
        c_pixels = smv_pixels(golden_bytes(CASES[case_id]["outputs"][kind]))
        pixels = smv_pixels(run.outputs[kind])
        assert pixels.shape == c_pixels.shape
        differ = int((pixels != c_pixels).sum())
        assert differ == 0, f"{kind} image: {differ} of {c_pixels.size} pixels differ"


@pytest.mark.parametrize("case_id", _params(("pgm",)))
def test_pgm_bytes_identical_to_c_program(case_id, tmp_path, monkeypatch):
    run = _ran(case_id, tmp_path, monkeypatch)
    assert "pgm" in run.outputs, "no PGM written"
    assert run.outputs["pgm"] == golden_bytes(CASES[case_id]["outputs"]["pgm"])


@pytest.mark.parametrize("case_id", _params())
def test_stdout_is_the_c_programs_line_for_line(case_id, tmp_path, monkeypatch):
    # the C program's SMV reader also prints the address it mapped a file at ("mmap(...)")
    run = _ran(case_id, tmp_path, monkeypatch)
    c_lines = [line for line in golden_stdout(case_id).splitlines()
               if not line.startswith("mmap(")]
    assert run.stdout.splitlines() == c_lines
