"""torchbragg-nonbragg: nonBragg's amorphous background, checked against the C program.

* every ``nonb_*`` case of the golden suite (``tests/data/golden-suite``, rendered by the C
  nonBragg): float image within max_rel 1e-5 (in fact identical), SMV int and noise pixels
  identical, stdout identical line for line;
* extra C runs (``tests/data/c_runs/nonbragg``) for the options those cases leave out, with
  the same checks plus PGM bytes and the ``-img`` statistics file;
* bad input: one line on stderr, non-zero status, no file written;
* the F table reader and its interpolation, the off-by-one statistics, the progress meter;
* gradients of the background against finite differences, and use beside a Bragg simulator.
"""

from __future__ import annotations

import contextlib
import gzip
import io
import json
import math
import re
import shlex
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch

from torchbragg.background import (
    PixelSampler,
    SourceSet,
    amorphous_scale,
    background_for_simulator,
    molecule_count,
    place_detector,
    render_amorphous,
)
from torchbragg.cli.nonbragg import main
from torchbragg.cli.nonbragg_run import c_statistics, progress_lines
from torchbragg.io.errors import InputFileError
from torchbragg.stol import StructureFactorCurve, read_stol_table

DATA = Path(__file__).parent / "data"
SUITE = DATA / "golden-suite"
C_RUNS = DATA / "c_runs" / "nonbragg"
INPUTS = DATA / "golden" / "inputs"
MAX_REL = 1e-5
OUTFLAGS = {"float": ("-floatfile", "float.bin"), "int": ("-intfile", "int.img"),
            "noise": ("-noisefile", "noise.img"), "pgm": ("-pgmfile", "image.pgm")}

SUITE_CASES = sorted(p.name for p in SUITE.glob("nonb_*") if (p / "case.json").exists())
C_RUN_CASES = sorted(p.name for p in C_RUNS.iterdir() if (p / "case.json").exists())


@dataclass
class Result:
    status: int
    stdout: str
    stderr: str


def run(argv: list[str]) -> Result:
    """Call the command's main() in-process and capture what it prints."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        status = main(list(argv))
    return Result(status, out.getvalue(), err.getvalue())


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    """An empty working folder, made current, with the golden inputs/ linked in."""
    (tmp_path / "inputs").symlink_to(INPUTS, target_is_directory=True)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def gunzip(path: Path) -> bytes:
    data = path.read_bytes()
    return gzip.decompress(data) if path.suffix == ".gz" else data


def smv_pixels(raw: bytes) -> np.ndarray:
    header = raw[:512].decode("latin-1")
    size = int(header.split("HEADER_BYTES=")[1].split(";")[0])
    return np.frombuffer(raw[size:], dtype="<u2")


def max_rel(c_image: np.ndarray, p_image: np.ndarray) -> float:
    """suite_parity.py's measure: max |p - c| / (|c| + 1e-6 max|c|)."""
    c64, p64 = c_image.astype(np.float64), p_image.astype(np.float64)
    scale = np.abs(c64).max() or 1.0
    return float((np.abs(p64 - c64) / (np.abs(c64) + 1e-6 * scale)).max())


def check_float(golden: bytes, mine: Path) -> None:
    c = np.frombuffer(golden, np.float32)
    p = np.fromfile(mine, np.float32)
    assert c.shape == p.shape
    assert max_rel(c, p) <= MAX_REL


# --------------------------------------------------------------------------------------------
# Golden suite and extra C runs.
# --------------------------------------------------------------------------------------------


def suite_argv(case: dict) -> list[str]:
    """The case's arguments plus the flags suite_parity.py adds."""
    extra = []
    for kind in ("float", "int", "noise", "pgm"):
        if kind in case["outputs"]:
            extra += list(OUTFLAGS[kind])
    extra += [] if "noise" in case["outputs"] else ["-nonoise"]
    extra += [] if "pgm" in case["outputs"] else ["-nopgm"]
    return shlex.split(case["args"]) + extra + ["-noprogress"]


@pytest.mark.parametrize("case_id", SUITE_CASES)
def test_golden_suite_case(case_id, workdir):
    folder = SUITE / case_id
    case = json.loads((folder / "case.json").read_text())
    result = run(suite_argv(case))
    assert result.status == 0, result.stderr
    assert result.stdout == (folder / "stdout.txt").read_text()
    for kind, rel in case["outputs"].items():
        golden = gunzip(folder / Path(rel).name)
        mine = workdir / OUTFLAGS[kind][1]
        if kind == "float":
            check_float(golden, mine)
        else:
            assert np.array_equal(smv_pixels(golden), smv_pixels(mine.read_bytes())), kind
            assert golden[:512] == mine.read_bytes()[:512], f"{kind} header"


def _without_address(text: str) -> str:
    """The -img lines print a memory address: compare without it."""
    return re.sub(r"mmap\((.*)\) = 0x[0-9a-f]+", r"mmap(\1) = ADDRESS", text)


@pytest.mark.parametrize("case_id", C_RUN_CASES)
def test_c_run_case(case_id, workdir):
    folder = C_RUNS / case_id
    case = json.loads((folder / "case.json").read_text())
    if (folder / "img_input.img.gz").exists():
        (workdir / "img_input.img").write_bytes(gunzip(folder / "img_input.img.gz"))
    for name in case.get("files", []):
        (workdir / name).write_bytes((folder / name).read_bytes())
    argv = shlex.split(case["args"]) + [a for kind in ("float", "int", "noise", "pgm")
                                        for a in OUTFLAGS[kind]]
    result = run(argv)
    assert result.status == 0, result.stderr
    assert _without_address(result.stdout) == _without_address(
        (folder / "stdout.txt").read_text())
    outputs = case["outputs"]
    check_float(gunzip(folder / outputs["float"]), workdir / "float.bin")
    for kind in ("int", "noise", "pgm"):
        assert gunzip(folder / outputs[kind]) == (workdir / OUTFLAGS[kind][1]).read_bytes(), kind
    if "stolout" in outputs:
        assert gunzip(folder / outputs["stolout"]) == (workdir / "output.stol").read_bytes()


# --------------------------------------------------------------------------------------------
# Bad input.
# --------------------------------------------------------------------------------------------

WATER = ["-stol", "inputs/water.stol"]
SMALL = ["-detpixels", "8", "-noprogress", "-nonoise"]


def _files(folder: Path) -> set[str]:
    return {p.name for p in folder.iterdir() if p.name != "inputs"}


BAD = {
    "malformed line": (["-stol", "bad.stol"], "0 1\n0.1 2\nabc 3\n", ["bad.stol line 3"]),
    "unsorted": (["-stol", "bad.stol"], "0 1\n0.2 2\n0.1 3\n",
                 ["bad.stol line 3", "does not increase"]),
    "repeated stol": (["-stol", "bad.stol"], "0 1\n0.1 2\n0.1 3\n", ["bad.stol line 3"]),
    "no rows": (["-stol", "bad.stol"], "# nothing\n\n", ["bad.stol", "no data"]),
    "no F at all": (["-stol", "bad.stol"], "0 nan\n0.1 nan\n", ["no F values"]),
    "infinite F": (["-stol", "bad.stol"], "0 1\n0.1 inf\n", ["bad.stol line 2", "F is"]),
    "nan stol": (["-stol", "bad.stol"], "nan 1\n", ["bad.stol line 1"]),
    "missing table": (["-stol", "missing.stol"], None, ["missing.stol", "cannot read"]),
    "missing source file": (WATER + ["-sourcefile", "none.txt"], None, ["none.txt"]),
    "missing -img": (WATER + ["-img", "none.img"], None, ["none.img"]),
    "-img not SMV": (WATER + ["-img", "inputs/water.stol"], None, ["not an SMV image"]),
    "zero pixel": (WATER + ["-pixel", "0"], None, ["pixel size"]),
    "text value": (WATER + ["-distance", "far"], None, ["-distance", "far"]),
    "missing value": (WATER + ["-thick"], None, ["-thick", "expected 1 value"]),
    "option as file": (["-stol", "-nonoise"], None, ["-stol", "expected a value"]),
    "option as number": (WATER + ["-thick", "-nonoise"], None, ["-thick", "got the option"]),
    "negative wavelength": (WATER + ["-lambda", "-1"], None, ["wavelength"]),
    "zero energy": (WATER + ["-energy", "0"], None, ["wavelength"]),
    "negative thickness": (WATER + ["-thick", "-1"], None, ["sample thickness"]),
    "zero molecular weight": (WATER + ["-MW", "0"], None, ["molecular weight"]),
    "flux without beam size": (WATER + ["-flux", "1e12", "-beamsize", "0"], None,
                               ["-beamsize"]),
    "zero vector": (WATER + ["-fdet_vector", "0", "0", "0"], None, ["-fdet_vector"]),
    "fractional integer": (WATER + ["-oversample", "1.5"], None, ["-oversample", "integer"]),
    "too many steps": (WATER + ["-hdivrange", "1", "-hdivstep", "1e-30"], None,
                       ["steps", "nonBragg"]),
    "unknown option": (WATER + ["-bogus", "3"], None, ["unknown option -bogus"]),
    "stray argument": (WATER + ["stray"], None, ["stray argument 'stray'"]),
    "unwritable output": (WATER + ["-floatfile", "no/such/folder/x.bin"], None,
                          ["no/such/folder/x.bin"]),
    "molecules without volume": (WATER + ["-molecules", "1e10", "-thick", "0"], None,
                                 ["-molecules"]),
    "bad device": (WATER + ["--device", "tpu"], None, ["--device"]),
    "-img size mismatch": (WATER + ["-img", "small.img", "-detpixels", "9"], "img",
                           ["small.img", "8 x 8"]),
}


@pytest.mark.parametrize("name", list(BAD))
def test_bad_input_is_one_line(name, workdir):
    argv, content, words = BAD[name]
    if content == "img":
        assert run(WATER + SMALL + ["-intfile", "small.img"]).status == 0
    elif content is not None:
        (workdir / "bad.stol").write_text(content)
    before = _files(workdir)
    result = run(SMALL + argv)  # the option under test last: nothing after it
    assert result.status not in (0, 70), result.stderr
    lines = result.stderr.splitlines()
    errors = [line for line in lines if not line.startswith("WARNING")]
    assert len(errors) == 1, lines
    assert errors[0].startswith("torchbragg-nonbragg: error:"), errors[0]
    for word in words:
        assert word in errors[0], (word, errors[0])
    assert "Traceback" not in result.stdout + result.stderr
    assert result.stdout == ""
    assert _files(workdir) == before, "a failed run left files behind"


def test_missing_stol_prints_usage_and_exits_9(workdir):
    result = run(SMALL)
    assert result.status == 9
    assert result.stdout.startswith("nonBragg amorphous material diffraction simulator")
    assert "-stol" in result.stdout
    assert result.stderr.strip() == ("torchbragg-nonbragg: error: no -stol file given (F versus "
                                     "sin(theta)/lambda)")


def test_help_and_version(workdir):
    for flag in ("-h", "-help", "--help"):
        result = run(WATER + [flag])
        assert result.status == 0 and "usage: torchbragg-nonbragg" in result.stdout
    assert run(["--version"]).stdout.startswith("torchbragg ")


def test_nanobragg_options_are_ignored_with_a_warning(workdir):
    result = run(WATER + SMALL + ["-xds", "-cell", "70", "80", "90", "90", "90", "90",
                                  "-hkl", "x.hkl"])
    assert result.status == 0
    assert "WARNING: -xds is a nanoBragg option that nonBragg does not read" in result.stderr
    assert "-cell is a nanoBragg option" in result.stderr
    assert "pivoting detector around direct beam spot" in result.stdout  # -xds: no pivot


def test_allow_unknown_runs_anyway(workdir):
    result = run(WATER + SMALL + ["-bogus", "3", "--allow-unknown"])
    assert result.status == 0
    assert "unknown option -bogus" in result.stderr


def test_side_match_is_applied_and_reported(workdir):
    # -twotheta_axis also matches -twotheta: nonBragg then pivots about the sample
    result = run(WATER + SMALL + ["-twotheta_axis", "0", "0", "1"])
    assert result.status == 0
    assert "pivoting detector around sample" in result.stdout
    assert "also matches nonBragg's option -twotheta" in result.stderr


def test_nopgm_still_writes_the_pgm_as_nonbragg(workdir):
    result = run(WATER + SMALL + ["-nopgm", "-pgmfile", "x.pgm"])
    assert result.status == 0 and (workdir / "x.pgm").exists()
    assert "-nopgm" in result.stderr
    assert (workdir / "x.pgm").read_bytes().startswith(b"P5\n8 8\n# pixels scaled by ")


# --------------------------------------------------------------------------------------------
# The F table.
# --------------------------------------------------------------------------------------------


def test_table_reading(tmp_path):
    path = tmp_path / "t.stol"
    path.write_text("# sin(theta)/lambda F\n0 1\n0.1, 2 extra\n\n0.2\n0.3 nan\n0.4 5\n")
    table = read_stol_table(path)
    assert table.stol.tolist() == [0, 0.1, 0.2, 0.3, 0.4]
    assert np.isnan(table.F[2]) and np.isnan(table.F[3])
    assert any("line 5: no F value" in w for w in table.warnings)
    assert any("line 1" in w and "'#' comments" in w for w in table.warnings)
    curve = StructureFactorCurve.from_table(table)
    x = curve.x.numpy()
    assert curve.points == 9
    assert x[:2].tolist() == [-1e99, -1e98] and x[-2:].tolist() == [1e98, 1e99]
    # missing F are 0 inside; the ends take the lowest and highest F present
    assert curve.F.tolist() == [1, 1, 1, 2, 0, 0, 5, 5, 5]


def test_unsorted_table_names_file_and_line(tmp_path):
    path = tmp_path / "u.stol"
    path.write_text("0 1\n0.2 2\n0.1 3\n")
    with pytest.raises(InputFileError, match=r"u.stol line 3: .*does not increase"):
        read_stol_table(path)


@pytest.mark.parametrize("name", ["water", "air", "ice"])
def test_interpolation_is_nonbraggs_cubic(name):
    curve = StructureFactorCurve.from_table(read_stol_table(INPUTS / f"{name}.stol"))
    gen = torch.Generator().manual_seed(1)
    stol = torch.rand(200_000, generator=gen, dtype=torch.float64) * 2.2e10 - 1e9
    stol = torch.cat([stol, curve.x[2:-2]])  # the table points themselves
    expected = torch.searchsorted(curve.x[2:-2], stol, right=True) + 1
    assert torch.equal(curve.interval(stol), expected)
    fast, reference = curve(stol), curve.lagrange(stol)
    assert float((fast - reference).abs().max()) <= 1e-11 * float(curve.F.abs().max())


def test_interpolation_gradient_in_stol():
    curve = StructureFactorCurve.from_table(read_stol_table(INPUTS / "water.stol"))
    stol = torch.tensor([1.234e9, 3.21e9], dtype=torch.float64, requires_grad=True)
    curve(stol).sum().backward()
    h = 1e2
    fd = (curve(stol.detach() + h) - curve(stol.detach() - h)) / (2 * h)
    assert torch.allclose(stol.grad, fd, rtol=1e-6, atol=1e-20)


# --------------------------------------------------------------------------------------------
# Statistics and progress as the C program prints them.
# --------------------------------------------------------------------------------------------


def _c_statistics_loop(image: np.ndarray, roi: list[int]) -> tuple[float, float, float, float]:
    """nonBragg's statistics written as its loops, for a small image."""
    spixels, fpixels = image.shape
    flat = list(image.reshape(-1).astype(np.float32)) + [np.float32(0.0)]
    total = total_sqr = max_I = 0.0
    n = 0
    for s in range(spixels):
        for f in range(fpixels):
            if f < roi[0] or f > roi[1] or s < roi[2] or s > roi[3]:
                continue
            v = flat[s * fpixels + f]
            max_I = max(max_I, float(v))
            total += float(v)
            total_sqr += float(np.float32(v * v))
            n += 1
    mean = total / max(n, 1)
    rms = math.sqrt(total_sqr / (max(n, 2) - 1))
    dev, m, j = 0.0, 0, 0
    for s in range(spixels):
        for f in range(fpixels):
            j += 1
            if f < roi[0] or f > roi[1] or s < roi[2] or s > roi[3]:
                continue
            dev += (float(flat[j]) - mean) ** 2
            m += 1
    return max_I, mean, rms, math.sqrt(dev / (max(m, 2) - 1))


@pytest.mark.parametrize("roi", [[0, 7, 0, 5], [2, 5, 1, 3], [0, 8, 0, 6]])
def test_statistics_follow_the_c_loops(roi):
    image = np.random.default_rng(3).random((6, 8)).astype(np.float32) * 100
    stats = c_statistics(image, roi)
    assert (stats.max_I, stats.mean, stats.rms, stats.rmsd) == _c_statistics_loop(image, roi)


@pytest.mark.parametrize("total", [99, 100, 129 * 129, 40_001])
def test_progress_lines_follow_the_c_rule(total):
    def brute(start: int, stop: int) -> list[str]:
        if total // 100 <= 0:
            return []
        return [f"{n * 100 // total}% done" for n in range(start, stop)
                if n % (total // 20) == 0
                or ((10 * n < total or 10 * n > 9 * total) and n % (total // 100) == 0)]

    cuts = [0, 7, total // 3, total // 2 + 1, total - 1]
    for a, b in zip(cuts, cuts[1:], strict=False):
        assert progress_lines(a, b, total) == brute(a, b)


# --------------------------------------------------------------------------------------------
# The background as a differentiable torch function.
# --------------------------------------------------------------------------------------------

CURVE = None


def _curve() -> StructureFactorCurve:
    global CURVE
    if CURVE is None:
        CURVE = StructureFactorCurve.from_table(read_stol_table(INPUTS / "water.stol"))
    return CURVE


def _image(thickness, distance, density=1e6, mw=18.0, kahn=0.5, oversample=2,
           chunk=None, workers=None) -> torch.Tensor:
    placement = place_detector(distance_m=distance, beam_xy_m=(1.6e-3, 1.7e-3))
    sampler = PixelSampler(placement, torch.tensor(1e-4, dtype=torch.float64), 32, 24,
                           oversample=oversample)
    sources = SourceSet.from_positions([[-10.0, 0.0, 0.0], [-10.0, 0.01, 0.0]],
                                       [1e-10, 1.02e-10], [1.0, 0.5])
    molecules = molecule_count(thickness, 1e-4, 1e-4, density, mw)
    scale = amorphous_scale(1e20, molecules, len(sources) * oversample ** 2)
    return render_amorphous(sampler, sources, _curve(), scale, kahn=kahn,
                            chunk_elements=chunk, workers=workers).image


def test_gradient_in_sample_thickness_matches_finite_difference():
    thickness = torch.tensor(1e-4, dtype=torch.float64, requires_grad=True)
    _image(thickness, 0.05).sum().backward()
    h = 1e-9
    fd = (_image(1e-4 + h, 0.05).sum() - _image(1e-4 - h, 0.05).sum()) / (2 * h)
    assert thickness.grad is not None
    assert float(thickness.grad) == pytest.approx(float(fd), rel=1e-7)


@pytest.mark.parametrize("name", ["distance", "density", "mw"])
def test_gradients_in_other_parameters(name):
    base = {"distance": 0.05, "density": 1e6, "mw": 18.0}
    value = torch.tensor(base[name], dtype=torch.float64, requires_grad=True)
    args = dict(base, **{name: value})
    _image(1e-4, args["distance"], args["density"], args["mw"]).sum().backward()
    h = base[name] * 1e-5
    plus = dict(base, **{name: base[name] + h})
    minus = dict(base, **{name: base[name] - h})
    fd = (_image(1e-4, plus["distance"], plus["density"], plus["mw"]).sum()
          - _image(1e-4, minus["distance"], minus["density"], minus["mw"]).sum()) / (2 * h)
    assert float(value.grad) == pytest.approx(float(fd), rel=1e-6)


def test_chunks_and_threads_do_not_change_the_image():
    with torch.no_grad():
        reference = _image(1e-4, 0.05, chunk=1 << 20, workers=1)
        for chunk, workers in ((7, 1), (100, 2), (1000, 3)):
            assert torch.allclose(_image(1e-4, 0.05, chunk=chunk, workers=workers), reference,
                                  rtol=1e-13, atol=0)


def test_roi_leaves_other_pixels_zero():
    placement = place_detector(distance_m=0.05, beam_xy_m=(1.6e-3, 1.7e-3))
    sampler = PixelSampler(placement, torch.tensor(1e-4, dtype=torch.float64), 32, 24)
    sources = SourceSet.from_positions([[-10.0, 0.0, 0.0]], [1e-10])
    image = render_amorphous(sampler, sources, _curve(), 1.0, roi=(3, 10, 4, 40)).image
    inside = torch.zeros_like(image, dtype=torch.bool)
    inside[4:24, 3:11] = True
    assert bool((image[~inside] == 0).all()) and bool((image[inside] > 0).all())


def test_background_beside_a_bragg_simulator():
    from torchbragg.experiment import Experiment

    exp = Experiment.from_args("-cell 70 80 90 90 90 90 -default_F 10 -N 5 -lambda 1 "
                               "-distance 100 -pixel 0.1 -detpixels 32 -fluence 1e20")
    sim = exp.simulator
    molecules = molecule_count(1e-4, 1e-4, 1e-4)
    background = background_for_simulator(sim, _curve(), molecules, oversample=1)
    assert background.shape == (32, 32)
    assert bool(torch.isfinite(background).all()) and float(background.min()) > 0
    total = sim.render().image + background  # photons on the same pixels
    assert total.shape == background.shape
    # the same detector in nonBragg's own terms gives the same background
    frame = sim.detector.frame(sim.beam.direction)
    placement = place_detector(distance_m=float(frame.distance),
                               beam_xy_m=(float(frame.beam_f), float(frame.beam_s)))
    sampler = PixelSampler(placement, torch.tensor(1e-4, dtype=torch.float64), 32, 32)
    sources = SourceSet.from_positions([[-10.0, 0.0, 0.0]], [1e-10])
    own = render_amorphous(sampler, sources, _curve(), amorphous_scale(1e20, molecules, 1))
    assert torch.allclose(own.image, background, rtol=1e-12, atol=0)


def test_polarization_gradient_is_finite_on_the_beam_axis():
    # the direct beam hits the centre of pixel (4, 5): that ray has no azimuth psi
    pixel = 1e-4
    placement = place_detector(distance_m=0.05, beam_xy_m=(4.5 * pixel, 5.5 * pixel))
    sampler = PixelSampler(placement, torch.tensor(pixel, dtype=torch.float64), 10, 10)
    sources = SourceSet.from_positions([[-10.0, 0.0, 0.0]], [1e-10])
    diffracted = sampler.geometry(torch.tensor([4]), torch.tensor([5]), torch.tensor([0]))[0]
    assert diffracted.reshape(3).tolist() == [1.0, 0.0, 0.0]
    kahn = torch.tensor(0.9, dtype=torch.float64, requires_grad=True)
    image = render_amorphous(sampler, sources, _curve(), 1.0, kahn=kahn).image
    image.sum().backward()
    assert bool(torch.isfinite(image).all()) and bool(torch.isfinite(kahn.grad))
    h = 1e-6
    with torch.no_grad():
        fd = (render_amorphous(sampler, sources, _curve(), 1.0, kahn=0.9 + h).image.sum()
              - render_amorphous(sampler, sources, _curve(), 1.0, kahn=0.9 - h).image.sum())
    assert float(kahn.grad) == pytest.approx(float(fd) / (2 * h), rel=1e-6)


def test_gradient_is_finite_where_a_pixel_sees_the_direct_beam():
    # pixel (63, 64) is centred on the beam: sin(theta)/lambda = 0 there, |u| has a kink
    distance = torch.tensor(0.1, dtype=torch.float64, requires_grad=True)
    placement = place_detector(distance_m=distance, beam_xy_m=(6.35e-3, 6.45e-3))
    sampler = PixelSampler(placement, torch.tensor(1e-4, dtype=torch.float64), 128, 128)
    sources = SourceSet.from_positions([[-10.0, 0.0, 0.0]], [1e-10])
    image = render_amorphous(sampler, sources, _curve(), 1.0).image
    image.sum().backward()
    assert bool(torch.isfinite(distance.grad))
    h = 1e-7
    with torch.no_grad():
        def total(dist: float) -> float:
            moved = place_detector(distance_m=dist, beam_xy_m=(6.35e-3, 6.45e-3))
            grid = PixelSampler(moved, torch.tensor(1e-4, dtype=torch.float64), 128, 128)
            return float(render_amorphous(grid, sources, _curve(), 1.0).image.sum())

        fd = (total(0.1 + h) - total(0.1 - h)) / (2 * h)
    assert float(distance.grad) == pytest.approx(fd, rel=1e-5)


def test_molecule_count_follows_nonbragg():
    # 1 g/cm^3 water in a 0.1 mm cube: the C program prints 3.34563e+16 molecules
    assert f"{float(molecule_count(1e-4, 1e-4, 1e-4)):g}" == "3.34563e+16"
    # a given count sets the density, and the count is recomputed from it
    count = torch.tensor(1e18, dtype=torch.float64, requires_grad=True)
    recomputed = molecule_count(1e-4, 1e-4, 1e-4, 2e6, 20.0, molecules=count)
    recomputed.backward()
    assert float(recomputed.detach()) == pytest.approx(1e18, rel=1e-15)
    assert float(count.grad) == pytest.approx(1.0, rel=1e-12)
