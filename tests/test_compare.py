"""torchbragg-compare's image metrics and its two-image mode."""

from __future__ import annotations

import json

import numpy as np
import pytest

from golden_cases import CASES, golden_bytes
from torchbragg.cli.compare import main
from torchbragg.compare import compare_images, local_maxima, read_image, relative_difference


def spots(shift=(0, 0), size=(40, 50)) -> np.ndarray:
    slow, fast = np.mgrid[0:size[0], 0:size[1]].astype(np.float64)
    image = np.full(size, 0.1)
    for i, (s, f) in enumerate(((10, 10), (20, 35), (30, 15), (8, 40))):
        s, f = s + shift[0], f + shift[1]
        image += (i + 1) * 100 * np.exp(-((slow - s) ** 2 + (fast - f) ** 2) / 2.0)
    return image


def test_relative_difference_is_parity_tools():
    ref = np.array([[0.0, 1.0], [2.0, 4.0]])
    img = np.array([[1e-6, 1.5], [2.0, 3.0]])
    rel = relative_difference(ref, img)
    assert rel[0, 0] == pytest.approx(1e-6 / (4e-6))
    assert rel[0, 1] == pytest.approx(0.5 / (1 + 4e-6))
    assert rel[1, 0] == 0.0


def test_identical_and_shifted_images():
    same = compare_images(spots(), spots())
    assert same.max_rel == 0 and same.corr == pytest.approx(1.0) and same.frac_rel_gt_1e6 == 0
    assert same.peaks["matched_fraction"] == 1.0
    moved = compare_images(spots(), spots(shift=(1, -2)), peaks=4, radius_px=3)
    assert moved.peaks["peaks"] == 4 and moved.peaks["matched_fraction"] == 1.0
    assert moved.peaks["mean_offset_px"] == [1.0, -2.0]
    assert moved.max_rel > 1 and moved.corr < 0.9
    assert moved.worst_values[0] != moved.worst_values[1]
    far = compare_images(spots(), spots(shift=(5, 5)), peaks=4, radius_px=2)
    assert far.peaks["matched_fraction"] < 1.0


def test_local_maxima_brightest_first():
    assert local_maxima(spots(), 2).tolist() == [[8, 40], [30, 15]]


def test_two_images_from_the_command_line(tmp_path, capsys):
    a, b = tmp_path / "a.bin", tmp_path / "b.bin"
    spots().astype("<f4").tofile(a)
    (spots() * 1.001).astype("<f4").tofile(b)
    out = tmp_path / "m.json"
    assert main(["--images", str(a), str(b), "--size", "50", "40", "--json", str(out),
                 "--max-rel", "1e-2", "--min-corr", "0.999"]) == 0
    data = json.loads(out.read_text())
    assert data["thresholds_met"] and data["max_rel"] == pytest.approx(1e-3, rel=1e-3)
    assert data["sum_ratio"] == pytest.approx(1.001, rel=1e-6)
    assert main(["--images", str(a), str(b), "--size", "50", "40", "--max-rel", "1e-4"]) == 1
    assert "threshold not met: max_rel" in capsys.readouterr().out


@pytest.mark.parametrize(("args", "message"), [
    (["--images", "missing.bin", "missing.bin"], "cannot read"),
    (["--images", "a.bin"], "expected 2 arguments"),
    (["--images", "a.bin", "a.bin"], "not a square image"),
    (["--images", "a.bin", "a.bin", "--size", "7", "7"], "but --size gives"),
])
def test_bad_input_is_one_line(tmp_path, monkeypatch, capsys, args, message):
    monkeypatch.chdir(tmp_path)
    np.zeros(10, dtype="<f4").tofile(tmp_path / "a.bin")
    assert main(args) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1


def test_reads_smv_images(tmp_path):
    case = next(c for c in CASES.values() if "int" in c["outputs"])
    path = tmp_path / "int.img"
    path.write_bytes(golden_bytes(case["outputs"]["int"]))
    image = read_image(path)
    assert image.ndim == 2 and image.max() > 0
    assert compare_images(image, image).max_rel == 0


def test_raw_image_starting_with_a_brace_is_raw(tmp_path):
    image = np.full((16, 16), 1.0, dtype="<f4")
    image.view(np.uint8)[0, 0] = ord("{")  # the low mantissa byte of pixel (0, 0)
    path = tmp_path / "brace.bin"
    image.tofile(path)
    assert np.array_equal(read_image(path), image.astype(np.float64))


def test_json_is_strict_when_metrics_are_undefined(tmp_path):
    zeros = tmp_path / "z.bin"
    np.zeros((8, 8), dtype="<f4").tofile(zeros)
    out = tmp_path / "z.json"
    assert main(["--images", str(zeros), str(zeros), "--json", str(out)]) == 0
    text = out.read_text()
    assert "NaN" not in text and json.loads(text)["sum_ratio"] is None
