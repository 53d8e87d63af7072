"""Chunking never changes the image: pixels, sampling groups and orientations split alike."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from golden_cases import run_main
from torchbragg.cli.parse import parse_args
from torchbragg.precedence import resolve
from torchbragg.render import plan_chunks
from torchbragg.simulator import Simulator

BASE = ("-cell 70 80 90 75 85 95 -default_F 10 -lambda 1.0 -N 5 -distance 100 -pixel 0.1 "
        "-oversample 2 -detpixels 8 -detector_abs 300 -detector_thick 200 -thicksteps 2")


def test_plan_splits_pixels_then_groups_then_orientations():
    assert plan_chunks(100, 4, 10, 100, 10_000).pixels == 2
    assert plan_chunks(100, 4, 10, 100, 3_000) == plan_chunks(1, 4, 10, 100, 3_000)
    assert plan_chunks(100, 4, 10, 100, 3_000).groups == 3
    tiny = plan_chunks(100, 4, 10, 100, 250)
    assert (tiny.pixels, tiny.groups, tiny.orientations) == (1, 1, 2)


@pytest.mark.parametrize("extra", [
    "", "-oversample_omega -oversample_polar -oversample_thick", "-water 100 -oversample_omega",
    "-interpolate", "-dmin 4 -oversample_polar",
    "-mosaic 1 -mosaic_dom 5 -phisteps 3 -osc 1 -oversample_thick",
    "-hdivrange 1 -hdivstep 0.5 -dispersion 2 -dispsteps 2"])
def test_image_is_the_same_whatever_the_chunk_budget(extra, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    sim = Simulator(resolve(parse_args((BASE + " " + extra).split()).state).config)
    with torch.no_grad():
        reference = sim.render()
        for budget_mb in (1e-4, 2e-3, 1e-2):  # one group, a few groups, a few pixels per chunk
            out = sim.render(budget_mb)
            np.testing.assert_allclose(out.image, reference.image, rtol=1e-12, atol=0)
            assert float(out.omega_sum) == pytest.approx(float(reference.omega_sum), rel=1e-12)


def test_water_with_per_step_corrections_matches_c_program(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    args = ("-cell 70 80 90 75 85 95 -default_F 10 -lambda 1.0 -N 5 -distance 100 -pixel 0.1 "
            "-oversample 2 -oversample_omega -oversample_polar -detpixels 24 -water 50 "
            "-mosaic 0.5 -mosaic_dom 3 -nonoise -nopgm -noprogress -floatfile f.bin").split()
    assert run_main(args).status == 0
    image = np.fromfile(tmp_path / "f.bin", dtype=np.float32)
    # the C nanoBragg's float image for this command: sum and first pixels
    assert image.astype(np.float64).sum() == pytest.approx(2.510465828524061, rel=1e-7)
    np.testing.assert_allclose(image[:3], [3.67342873e-05, 1.60805808e-04, 1.20219600e-04],
                               rtol=1e-7)
