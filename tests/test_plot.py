"""comparison_png: a three-panel PNG of two images and their difference."""

from __future__ import annotations

import sys

import numpy as np
import pytest

pytest.importorskip("matplotlib")

from torchbragg.plot import (  # noqa: E402
    MISSING_MATPLOTLIB,
    _block_max,
    _block_signed_max,
    _difference_norm,
    _matplotlib,
    _reduction_factor,
    comparison_png,
)

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def spots(size=(64, 80), shift=(0.0, 0.0), scale=1.0) -> np.ndarray:
    slow, fast = np.mgrid[0:size[0], 0:size[1]].astype(np.float64)
    image = np.full(size, 0.05)
    for i, (s, f) in enumerate(((12, 15), (30, 60), (45, 25), (55, 70), (20, 40))):
        s, f = s + shift[0], f + shift[1]
        image += scale * 10 ** (i % 4 + 1) * np.exp(-((slow - s) ** 2 + (fast - f) ** 2) / 3.0)
    return image


def png_size(path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data.startswith(PNG_SIGNATURE)
    assert data[12:16] == b"IHDR"
    return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")


def test_writes_three_panel_png(tmp_path):
    path = tmp_path / "compare.png"
    comparison_png(spots(), spots(shift=(0.7, -0.4), scale=1.1), path, titles=("C", "torch"))
    width, height = png_size(path)
    assert width > height > 100
    assert not [p for p in tmp_path.iterdir() if p.name != "compare.png"]  # no temporaries left


def test_identical_images(tmp_path):
    path = tmp_path / "same.png"
    comparison_png(spots(), spots(), path)
    width, height = png_size(path)
    assert width > height


def test_zeros_negatives_and_non_finite(tmp_path):
    ref = spots()
    img = spots(scale=0.9) - 0.1
    img[3, 4], img[5, 6], ref[7, 8] = np.nan, np.inf, -np.inf
    comparison_png(ref, img, tmp_path / "odd.png")
    png_size(tmp_path / "odd.png")
    comparison_png(np.zeros((10, 12)), np.zeros((10, 12)), tmp_path / "zeros.png")
    png_size(tmp_path / "zeros.png")


def test_large_image_is_reduced(tmp_path):
    ref = np.zeros((2100, 1900))
    ref[100, 200] = ref[1500, 1800] = ref[2099, 1899] = 1000.0
    img = ref * 1.01
    img[700, 700] = -3.0
    path = tmp_path / "large.png"
    comparison_png(ref, img, path)
    width, height = png_size(path)
    assert width > height


def test_block_reductions_keep_spots_and_signs():
    array = np.zeros((7, 5))
    array[6, 4] = 2.0
    array[1, 1] = -5.0
    array[0, 0] = 1.0
    maxima = _block_max(array, 3)
    assert maxima.shape == (3, 2)
    assert maxima[0, 0] == 1.0 and maxima[2, 1] == 2.0
    signed = _block_signed_max(array, 3)
    assert signed[0, 0] == -5.0 and signed[2, 1] == 2.0
    assert _block_max(array, 1) is array


def test_reduction_factor():
    assert _reduction_factor((64, 80), 1024, 150) == 1
    assert _reduction_factor((2527, 2463), 1024, 600) == 3  # max_pixels decides
    assert _reduction_factor((2527, 2463), 1024, 150) > 3  # the panel's dots decide
    assert _reduction_factor((2527, 2463), 100, 600) == 26


@pytest.mark.parametrize("limit", [5e-324, 1e-300, 0.3, 7.0, 1e5])
def test_difference_norm_threshold_positive(limit):
    diff = np.array([[0.0, limit], [-limit / 2, 0.0]])
    norm = _difference_norm(_matplotlib(), diff, brightest=1e4)
    assert 0 < norm.linthresh <= limit
    assert norm.vmin == -limit and norm.vmax == limit


def test_mismatched_shapes_raise(tmp_path):
    with pytest.raises(ValueError, match="shape"):
        comparison_png(np.zeros((4, 5)), np.zeros((5, 4)), tmp_path / "x.png")
    with pytest.raises(ValueError, match="2-D"):
        comparison_png(np.zeros((2, 4, 5)), np.zeros((2, 4, 5)), tmp_path / "x.png")
    assert not list(tmp_path.iterdir())


def test_bad_input_leaves_existing_file(tmp_path):
    path = tmp_path / "old.png"
    path.write_bytes(b"old")
    with pytest.raises(ValueError):
        comparison_png(np.zeros((4, 5)), np.zeros((4, 6)), path)
    assert path.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["old.png"]


def test_missing_matplotlib_message(tmp_path, monkeypatch):
    for name in ("matplotlib", "matplotlib.figure", "matplotlib.colors",
                 "matplotlib.backends", "matplotlib.backends.backend_agg"):
        monkeypatch.setitem(sys.modules, name, None)
    with pytest.raises(ImportError) as info:
        comparison_png(spots(), spots(), tmp_path / "x.png")
    assert str(info.value) == MISSING_MATPLOTLIB
    assert "\n" not in str(info.value)
