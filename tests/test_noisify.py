"""torchbragg-noisify: the C noisify's golden cases, bad input, and the torch detector effects.

Golden data (tests/data/golden-suite/noz_*) was written by the C ``noisify`` (upstream main);
each case folder holds its ``case.json`` (the arguments), the gzipped outputs and the C
program's stdout. The input image is tests/data/golden/inputs/bragg.bin.
"""

from __future__ import annotations

import contextlib
import gzip
import io
import json
import math
import os
import shlex
from pathlib import Path

import numpy as np
import pytest
import torch

from torchbragg.noisify import effects, exact
from torchbragg.noisify.cli import main
from torchbragg.noisify.options import parse_noisify_args

DATA = Path(__file__).parent / "data"
SUITE = DATA / "golden-suite"
INPUTS = DATA / "golden" / "inputs"
CASES = sorted(p.name for p in SUITE.glob("noz_*"))
# output kind -> (flag, file name), as the suite's comparison tool passes them
OUTFLAGS = {"int": ("-intfile", "int.img"), "noise": ("-noisefile", "noise.img"),
            "pgm": ("-pgmfile", "image.pgm")}


def run(argv: list[str]) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        status = main(list(argv))
    return status, out.getvalue(), err.getvalue()


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    (tmp_path / "inputs").symlink_to(INPUTS, target_is_directory=True)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def case_argv(case: dict) -> list[str]:
    argv = shlex.split(case["args"])
    for kind, (flag, name) in OUTFLAGS.items():
        if kind in case["outputs"]:
            argv += [flag, name]
    if "noise" not in case["outputs"]:
        argv.append("-nonoise")
    if "pgm" not in case["outputs"]:
        argv.append("-nopgm")
    return argv


def smv_pixels(raw: bytes) -> np.ndarray:
    header_bytes = int(raw[:512].decode("latin-1").split("HEADER_BYTES=")[1].split(";")[0])
    return np.frombuffer(raw[header_bytes:], dtype="<u2")


# ---------------------------------------------------------------------------
# Golden cases: pixels, PGM bytes and stdout identical to the C program's.
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("case_id", CASES)
def test_golden_case(case_id, workdir):
    case = json.loads((SUITE / case_id / "case.json").read_text())
    status, stdout, stderr = run(case_argv(case))
    assert status == 0, stderr
    assert stderr == ""
    for kind, rel in case["outputs"].items():
        golden = gzip.decompress((SUITE / rel).read_bytes())
        mine = (workdir / OUTFLAGS[kind][1]).read_bytes()
        if kind == "pgm":
            assert mine == golden
        else:
            assert np.array_equal(smv_pixels(mine), smv_pixels(golden)), kind
            assert mine == golden  # the header too
    expected = (SUITE / case["stdout"]).read_text()
    assert stdout.splitlines() == expected.splitlines()


def test_golden_cases_present():
    assert len(CASES) == 6


# ---------------------------------------------------------------------------
# Bad input: one line on stderr, non-zero status, nothing written.
# ---------------------------------------------------------------------------

BASE = ["-detpixels", "128", "-seed", "1", "-intfile", "i.img", "-noisefile", "n.img",
        "-pgmfile", "p.pgm"]


def write_bytes(path: Path, data: bytes) -> str:
    path.write_bytes(data)
    return str(path)


BAD = {
    "missing float file": (["-floatfile", "nowhere.bin"], "nowhere.bin: cannot read file"),
    "wrong-size float file": (["-floatfile", "inputs/bragg.bin", "-detpixels", "100"],
                              "65536 bytes, but 100x100 float32 pixels need 40000"),
    "empty float file": (["-floatfile", "EMPTY"], "empty float image"),
    "negative PSF width": (["-floatfile", "inputs/bragg.bin", "-psf", "gauss", "-psf_fwhm",
                            "-50"], "the PSF width cannot be negative"),
    "negative PSF radius": (["-floatfile", "inputs/bragg.bin", "-psf_radius", "-2"],
                            "the PSF radius cannot be negative"),
    "malformed seed": (["-floatfile", "inputs/bragg.bin", "-seed", "abc"],
                       "option -seed: expected a number, got 'abc'"),
    "fractional seed": (["-floatfile", "inputs/bragg.bin", "-seed", "2.5"],
                        "option -seed: expected an integer, got '2.5'"),
    "malformed scale": (["-floatfile", "inputs/bragg.bin", "-scale", "1x"],
                        "option -scale: expected a number, got '1x'"),
    "NaN gain": (["-floatfile", "inputs/bragg.bin", "-gain", "nan"],
                 "option -gain: expected a number, got 'nan'"),
    "infinite readout": (["-floatfile", "inputs/bragg.bin", "-readout_noise", "1e999"],
                         "option -readout_noise: expected a finite number"),
    "missing value": (["-floatfile", "inputs/bragg.bin", "-adc"], "option -adc needs a value"),
    "bits": (["-floatfile", "inputs/bragg.bin", "-bits", "8"], "expected 16 or 32"),
    "zero pixel": (["-floatfile", "inputs/bragg.bin", "-pixel", "0"],
                   "the pixel size must be positive"),
    "header not SMV": (["-floatfile", "inputs/bragg.bin", "-header", "inputs/bragg.bin"],
                       "does not look like an ADSC (SMV) frame"),
    "missing header": (["-floatfile", "inputs/bragg.bin", "-header", "nowhere.img"],
                       "nowhere.img: cannot read file"),
}


@pytest.mark.parametrize("name", sorted(BAD))
def test_bad_input_is_one_line(name, workdir):
    args, message = BAD[name]
    (workdir / "EMPTY").write_bytes(b"")
    status, _, stderr = run(BASE + args)
    assert status == 2
    assert stderr.count("\n") == 1, stderr
    assert stderr.startswith("torchbragg-noisify: error: ")
    assert message in stderr
    assert "Traceback" not in stderr
    assert not any((workdir / name).exists() for name in ("i.img", "n.img", "p.pgm"))


def test_no_input_prints_usage(workdir):
    status, stdout, stderr = run(["-seed", "1"])
    assert status == 9
    assert stdout.startswith("noisify - add noise to pixels")
    assert "usage: torchbragg-noisify" in stdout
    assert stderr.strip() == "torchbragg-noisify: error: no input image: give -floatfile FILE"


def test_unwritable_output_is_one_line(workdir):
    status, _, stderr = run(["-floatfile", "inputs/bragg.bin", "-seed", "1", "-intfile",
                             "no/such/dir/i.img", "-nopgm", "-nonoise"])
    assert status == 2
    assert stderr.count("\n") == 1 and stderr.startswith("torchbragg-noisify: error: ")
    assert "cannot write no/such/dir/i.img" in stderr


def test_help_and_version(workdir):
    status, stdout, _ = run(["--help"])
    assert status == 0 and "-psf gauss|fiber" in stdout
    status, stdout, _ = run(["--version"])
    assert status == 0 and stdout.startswith("torchbragg-noisify ")


def test_unknown_option_warns_and_runs(workdir):
    status, _, stderr = run(["-floatfile", "inputs/bragg.bin", "-seed", "1", "-cell", "70",
                             "-nonoise", "-nopgm", "-intfile", "i.img"])
    assert status == 0
    assert stderr.strip() == ("torchbragg-noisify: warning: ignoring unknown option -cell "
                              "(noisify ignores it too)")


def test_header_file_is_copied_and_sets_geometry(workdir):
    text = (b"{\nHEADER_BYTES=512;\nDIM=2;\nBYTE_ORDER=little_endian;\nTYPE=unsigned_short;\n"
            b"SIZE1=128;\nSIZE2=128;\nPIXEL_SIZE=0.172;\nDISTANCE=123.4;\n"
            b"BEAM_CENTER_X=5.5;\nBEAM_CENTER_Y=6.5;\n}\f")
    header = text + b" " * (512 - len(text))
    (workdir / "h.img").write_bytes(header + bytes(2 * 128 * 128))
    status, stdout, _ = run(["-floatfile", "inputs/bragg.bin", "-seed", "1", "-header", "h.img",
                             "-intfile", "i.img", "-noisefile", "n.img", "-nopgm"])
    assert status == 0
    lines = stdout.splitlines()
    assert lines[1:3] == ["taking header from h.img", "reading h.img"]
    assert "  distance=0.1234 detsize=0.022016x0.022016  pixel=0.000172 meters (128x128 " \
           "pixels)" in lines
    assert "  Xbeam=0.0055 Ybeam=0.015516" in lines
    for name in ("i.img", "n.img"):
        raw = (workdir / name).read_bytes()
        assert raw[:512] == header and len(raw) == 512 + 2 * 128 * 128


def test_32_bit_images(workdir):
    status, stdout, _ = run(["-floatfile", "inputs/bragg.bin", "-seed", "1", "-bits", "32",
                             "-scale", "1e5", "-intfile", "i.img", "-noisefile", "n.img",
                             "-nopgm"])
    assert status == 0
    raw = (workdir / "n.img").read_bytes()
    assert b"TYPE=long_integer;" in raw[:512] and len(raw) == 512 + 4 * 128 * 128
    noisy = np.frombuffer(raw[512:], dtype="<u4")
    assert noisy.max() > 65535  # no 16-bit clipping
    noiseless = np.frombuffer((workdir / "i.img").read_bytes()[512:], dtype="<u4")
    assert noiseless.max() == 65535  # the noiseless image is clipped at 65535 either way
    assert "writing i.img as 16384 4-byte integers" in stdout


def test_noiseless_gaussian_psf_of_dim_pixels(workdir):
    # The C program crashes here (square root of a negative number for pixels below 0.01
    # photons); torchbragg gives such pixels the smallest radius, 1.
    status, stdout, _ = run(["-floatfile", "inputs/bragg.bin", "-seed", "1", "-nonoise",
                             "-psf", "gauss", "-psf_fwhm", "150", "-intfile", "i.img", "-nopgm"])
    assert status == 0
    assert "  auto-selected psf_radius = 4 pixels" in stdout.splitlines()
    assert (workdir / "i.img").stat().st_size == 512 + 2 * 128 * 128


# ---------------------------------------------------------------------------
# The C program's option scan.
# ---------------------------------------------------------------------------


def test_options_match_by_substring_as_in_c():
    st = parse_noisify_args(["-readout_noise", "3", "-psf_fwhm", "80", "-psf", "gaussian",
                             "-detpixels_x", "64", "-calib_seed", "9", "-seed", "4",
                             "my_floatimage.bin.old", "-Xbeam", "5"], clock=lambda: 1000)
    assert st.readout == 3.0
    assert st.psf == "gauss"
    assert st.psf_fwhm_m == np.float32(80e-6)  # stored in a C float
    assert (st.xpixels, st.ypixels) == (64, 0)
    assert (st.seed, st.calib_seed) == (-4, -9)
    assert st.float_path == "my_floatimage.bin.old"
    assert st.xbeam_m == 0.005


def test_options_defaults_and_whole_word_patterns():
    st = parse_noisify_args(["-detsize_x", "20", "-detpixelsX", "7"], clock=lambda: 1234)
    assert st.seed == -1234  # -time(NULL)
    assert st.calib_seed == 123456789
    assert st.detsize_x_m == 0.02 and st.detsize_y_m == 0.1024  # -detsize must match whole
    assert st.xpixels == 0  # "-detpixelsX" is neither -detpixels nor -detpixels_x
    assert st.warnings == ["ignoring unknown option -detpixelsX (noisify ignores it too)"]


def test_unknown_psf_type_message():
    st = parse_noisify_args(["-psf", "airy"])
    assert st.psf is None
    assert st.messages == ["WARNING: unknown psf type: airy"]


# ---------------------------------------------------------------------------
# Exact (C) pieces.
# ---------------------------------------------------------------------------


def bragg_image() -> np.ndarray:
    return np.fromfile(INPUTS / "bragg.bin", dtype="<f4").reshape(128, 128)


def test_shot_noise_is_reproducible_and_poisson():
    photons = np.full((64, 64), 50.0, dtype=np.float32)
    first, total = exact.shot_noise(photons, exact.NoiseStreams(-7), 0.0, 0.0)
    again, _ = exact.shot_noise(photons, exact.NoiseStreams(-7), 0.0, 0.0)
    assert np.array_equal(first, again)
    assert total == float(first.astype(np.float64).sum())
    assert abs(first.mean() - 50.0) < 0.5 and abs(first.var() - 50.0) < 4.0


def test_adu_image_casts_as_c():
    photons = np.array([[-5.7, -0.5, np.nan, 70000.0, 12.9]], dtype=np.float32)
    result = exact.adu_image(photons, gain=1.0, adc_offset=0.0, bits=16)
    assert result.pixels16.tolist() == [[65531, 0, 0, 65535, 12]]
    assert result.overloads == 1
    pixels, overloads = effects.quantize(torch.from_numpy(photons.astype(np.float64)))
    assert pixels.tolist() == [[65531, 0, 0, 65535, 12]] and overloads == 1


def test_exact_psf_wraps_right_edge_into_next_row():
    image = np.zeros((5, 6), dtype=np.float32)
    image[2, 5] = 100.0  # last column
    result = exact.apply_psf(image, "gauss", 1.0, radius=1)
    kernel = exact.psf_kernel("gauss", 1.0, 1)
    even = result.lost_photons / image.size  # the lost photons, added back everywhere
    # the C bounds test lets column 6 through: it lands in column 0 of the next row
    assert result.image[3, 0] == np.float32(np.float32(100.0 * kernel[1, 2]) + even)
    assert result.image[2, 0] == np.float32(even)
    assert result.image[2, 4] == np.float32(np.float32(100.0 * kernel[1, 0]) + even)


def test_exact_psf_conserves_intensity_away_from_edges():
    for kind, fwhm in (("gauss", 1.5), ("fiber", 0.8)):
        image = np.zeros((101, 101), dtype=np.float32)
        image[50, 50] = 1000.0
        result = exact.apply_psf(image, kind, fwhm, radius=30)
        # pixelised kernel on a disc + the continuous tail beyond it: not exactly 1 (2e-5 for
        # the fibre PSF), so the C recipe keeps the total to a few 1e-5
        assert math.isclose(result.image.astype(np.float64).sum(), 1000.0, rel_tol=1e-4)


def test_exact_and_torch_kernels_agree():
    for kind, fwhm, radius in (("gauss", 1.5, 4), ("gauss", 0.3, 2), ("fiber", 0.8, 20)):
        c_kernel = exact.psf_kernel(kind, fwhm, radius)
        t_kernel = effects.psf_kernel(kind, fwhm, radius).numpy()
        assert np.abs(c_kernel - t_kernel).max() < 1e-15


def test_torch_psf_matches_exact_psf_inside_the_image():
    image = bragg_image()
    for kind, fwhm, radius in (("gauss", 1.5, 4), ("fiber", 0.8, 30)):
        c_out = exact.apply_psf(image, kind, fwhm, radius).image
        t_out = effects.apply_psf(torch.from_numpy(image).double(), kind, fwhm, radius).numpy()
        inner = (slice(radius + 1, -radius - 1),) * 2
        assert np.abs(c_out - t_out)[inner].max() < 1e-5 * c_out.max()


# ---------------------------------------------------------------------------
# Torch path: differentiable PSF and gain, conservation, FFT = direct.
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("kind,fwhm,radius", [("gauss", 1.5, 5), ("fiber", 0.9, 12)])
def test_psf_gradient_wrt_width_matches_finite_difference(kind, fwhm, radius):
    image = torch.from_numpy(bragg_image()).double()
    weights = torch.rand(image.shape, dtype=torch.float64,
                         generator=torch.Generator().manual_seed(0))

    def loss(width):
        return (weights * effects.apply_psf(image, kind, width, radius)).sum()

    width = torch.tensor(fwhm, dtype=torch.float64, requires_grad=True)
    loss(width).backward()
    step = 1e-6
    numeric = (loss(torch.tensor(fwhm + step, dtype=torch.float64))
               - loss(torch.tensor(fwhm - step, dtype=torch.float64))) / (2 * step)
    assert width.grad is not None
    assert math.isclose(width.grad.item(), numeric.item(), rel_tol=1e-6)


def test_gain_and_offset_gradients():
    photons = torch.from_numpy(bragg_image()).double()
    gain = torch.tensor(2.0, dtype=torch.float64, requires_grad=True)
    offset = torch.tensor(40.0, dtype=torch.float64, requires_grad=True)
    adu = effects.detector_image(photons, gain=gain, adc_offset=offset, noise=False,
                                 psf="gauss", psf_fwhm_px=1.5, psf_radius=4)
    adu.sum().backward()
    blurred = effects.apply_psf(photons, "gauss", 1.5, 4)
    assert math.isclose(gain.grad.item(), blurred.sum().item(), rel_tol=1e-12)
    assert offset.grad.item() == photons.numel()


def test_torch_psf_conserves_total_intensity():
    image = torch.from_numpy(bragg_image()).double()
    for kind in ("gauss", "fiber"):
        conserved = effects.apply_psf(image, kind, 2.0, add_back="all")
        assert math.isclose(conserved.sum().item(), image.sum().item(), rel_tol=1e-12)
        # noisify's own recipe (tail added back): only edge losses
        tail = effects.apply_psf(image, kind, 2.0, add_back="tail")
        assert tail.sum().item() <= image.sum().item()


def test_fft_and_direct_convolution_agree():
    image = torch.from_numpy(bragg_image()).double()
    direct = effects.apply_psf(image, "fiber", 1.2, 9, method="direct")
    fft = effects.apply_psf(image, "fiber", 1.2, 9, method="fft")
    assert torch.allclose(direct, fft, rtol=0, atol=1e-10)


def test_torch_noise_statistics():
    photons = torch.full((200, 200), 100.0, dtype=torch.float64)
    gen = torch.Generator().manual_seed(3)
    adu = effects.detector_image(photons, gain=2.0, adc_offset=10.0, readout=3.0,
                                 calibration=0.0, generator=gen)
    # mean 2*100 + 10, variance 4*100 + 9
    assert abs(adu.mean().item() - 210.0) < 0.5
    assert abs(adu.var().item() - 409.0) < 15.0


def test_public_names_resolve_lazily():
    import torchbragg.noisify as package

    for name in package.__all__:
        assert callable(getattr(package, name)) or isinstance(getattr(package, name), type)


def test_cli_does_not_import_torch():
    import subprocess
    import sys

    code = ("import sys; from torchbragg.noisify import cli; "
            "cli.run(['-floatfile', sys.argv[1], '-seed', '1', '-intfile', sys.argv[2], "
            "'-nonoise', '-nopgm']); print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code, str(INPUTS / "bragg.bin"),
                          os.devnull], capture_output=True, text=True, check=True)
    assert out.stdout.strip().splitlines()[-1] == "False"
