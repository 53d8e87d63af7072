"""PNG preview: a valid PNG of the documented size, rings, and clear errors."""

from __future__ import annotations

import struct
import sys

import numpy as np
import pytest

from torchbragg.io.image_geometry import ImageGeometry
from torchbragg.io.png import preview_size_px, write_png

pytest.importorskip("matplotlib")

GEOMETRY = ImageGeometry.simple(300, 200, pixel_size_mm=0.1, distance_mm=50.0,
                                wavelength_A=1.0, beam_center_fast_px=150.0,
                                beam_center_slow_px=100.0)


def png_size(path) -> tuple[int, int]:
    """(width, height) from the IHDR chunk, after checking the signature."""
    raw = path.read_bytes()
    assert raw[:8] == b"\x89PNG\r\n\x1a\n" and raw[12:16] == b"IHDR"
    return struct.unpack(">II", raw[16:24])


def image(shape=(200, 300), seed=0) -> np.ndarray:
    photons = np.random.default_rng(seed).exponential(1.0, size=shape)
    photons[::20, ::25] = 5e3
    return photons


def test_png_of_documented_size(tmp_path):
    path = tmp_path / "preview.png"
    write_png(path, image(), GEOMETRY, rings_A=[5.0, 2.5], dpi=50)
    assert png_size(path) == preview_size_px((200, 300), dpi=50) == (400, 263)


def test_big_detector_keeps_a_small_png(tmp_path):
    shape = (2100, 1800)
    path = tmp_path / "big.png"
    write_png(path, np.zeros(shape), dpi=40)  # all zero: any log scale will do
    width, height = png_size(path)
    assert (width, height) == preview_size_px(shape, dpi=40)
    assert width < 400 and height < 400


def test_rings_off_the_detector_and_non_finite_pixels(tmp_path):
    photons = image()
    photons[0, 0] = np.nan
    photons[1, 1] = np.inf
    write_png(tmp_path / "p.png", photons, GEOMETRY, rings_A=[100.0, 0.4, 0.3], dpi=30)
    assert png_size(tmp_path / "p.png") == preview_size_px(photons.shape, dpi=30)


def test_bad_arguments(tmp_path):
    with pytest.raises(ValueError, match="geometry"):
        write_png(tmp_path / "p.png", image(), rings_A=[3.0])
    with pytest.raises(ValueError, match="positive"):
        write_png(tmp_path / "p.png", image(), GEOMETRY, rings_A=[-3.0])
    with pytest.raises(ValueError, match="differs"):
        write_png(tmp_path / "p.png", image((20, 30)), GEOMETRY)
    with pytest.raises(ValueError, match="2-D"):
        write_png(tmp_path / "p.png", np.zeros(5))
    with pytest.raises(OSError, match=r"cannot write .*nowhere/p\.png"):
        write_png(tmp_path / "nowhere" / "p.png", image((20, 30)), dpi=20)
    assert list(tmp_path.iterdir()) == []


def test_missing_matplotlib_names_the_extra(tmp_path, monkeypatch):
    for name in [m for m in sys.modules if m == "matplotlib" or m.startswith("matplotlib.")]:
        monkeypatch.setitem(sys.modules, name, None)
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    with pytest.raises(ImportError, match=r"pip install 'torchbragg\[plot\]'"):
        write_png(tmp_path / "p.png", image())
