import os

import numpy as np
import pytest
from io_testdata import C_RUNS, golden_bytes, golden_float_image, golden_stdout

from torchbragg.io.images import format_c_g, image_statistics, int_image, pgm_image
from torchbragg.io.pgm import pgm_header_text, write_pgm


@pytest.mark.parametrize(
    ("case", "size", "scale", "adc", "pgm_scale", "printed"),
    [
        ("sc_smv_pgm", 128, None, 40.0, None, "2.41062"),
        ("sc_scale_adc", 96, 500.0, 10.0, 3.0, "3"),
    ],
)
def test_pgm_reproduces_golden(tmp_path, case, size, scale, adc, pgm_scale, printed):
    float_image = golden_float_image(case, size, size).astype(np.float64)
    stats = image_statistics(float_image)
    int_scale = int_image(float_image, scale=scale, adc_offset=adc, max_I=stats.max_I).scale
    result = pgm_image(float_image, pgm_scale, rmsd=stats.rmsd, intfile_scale=int_scale)
    assert format_c_g(result.scale) == printed
    assert f"pgm_scale = {printed}" in golden_stdout(case)

    out = tmp_path / "image.pgm"
    write_pgm(out, result.pixels, result.scale)
    assert out.read_bytes() == golden_bytes(case, "image.pgm.gz")
    assert os.listdir(tmp_path) == ["image.pgm"]


def test_pgm_with_roi_matches_c_run(tmp_path):
    run = C_RUNS / "roi_xds"
    float_image = np.fromfile(run / "float.bin", dtype="<f4").reshape(24, 24)
    roi = (3, 17, 5, 20)
    stats = image_statistics(float_image, roi)
    int_scale = int_image(float_image, adc_offset=-3.0, roi=roi, max_I=stats.max_I).scale
    result = pgm_image(float_image, rmsd=stats.rmsd, intfile_scale=int_scale, roi=roi)
    out = tmp_path / "image.pgm"
    write_pgm(out, result.pixels, result.scale)
    assert out.read_bytes() == (run / "image.pgm").read_bytes()


def test_pgm_header_text():
    assert pgm_header_text(96, 64, 2.5) == "P5\n96 64\n# pixels scaled by 2.5\n255\n"


def test_pgm_conversion_edge_cases():
    values = np.array([[0.0, 0.99, 254.9, 300.0, -0.5, -1.5, np.nan]])
    pixels = pgm_image(values, pgm_scale=1.0).pixels
    # clipped above only; x86-64 C casts -1.5 to (unsigned char) 255
    assert pixels.tolist() == [[0, 0, 254, 255, 0, 255, 0]]
    # automatic scale: 250 / (5 rmsd), or the int scale when the image is flat
    flat = np.full((3, 3), 2.0)
    assert pgm_image(flat, intfile_scale=7.0).scale == 7.0
    ramp = np.arange(9.0).reshape(3, 3)
    rmsd = image_statistics(ramp).rmsd
    assert pgm_image(ramp).scale == 250.0 / (5.0 * rmsd)
