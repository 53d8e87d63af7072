"""The compiled fused kernel gives the reference path's images, and falls back cleanly.

Every golden case is rendered with ``--kernel fused`` and held to the C program's float image
(max_rel 1e-5 in float64, 1e-3 with ``--dtype float32``). Cases whose features the kernel
does not cover must say so on stderr and still match through the reference path. Building a
kernel variant takes 15 s to 2 min once per machine (then it is cached), so the default run covers
the four common variants (square spots, one or several samples per pixel, float64 and
float32); the cases needing other variants run with ``-m slow``.
"""

from __future__ import annotations

import shlex

import numpy as np
import pytest
import torch

from golden_cases import CASES, golden_bytes, max_rel, run_case
from torchbragg import aot, fused
from torchbragg.cli.parse import parse_args
from torchbragg.precedence import resolve
from torchbragg.simulator import Simulator

# features the fused kernel leaves to the reference path
NOT_COVERED = {"curved": "-curved_det", "oversample_flags": "-oversample",
               "absorption_oversample_thick": "-oversample", "interpolate": "interpolation",
               "interpolate_fallback": "interpolation", "xtal_dims": "interpolation"}
# cases needing a kernel variant of their own (spot shape, point pixel, sensor absorption,
# -dmin, -nopolar): one more compilation each
OWN_VARIANT = {"point_pixel", "absorption", "shape_round", "shape_gauss", "shape_tophat",
               "aliases", "dmin", "nopolar"}
FLOAT32_MAX_REL = 1e-3


def _params() -> list:
    return [pytest.param(cid, id=cid, marks=[pytest.mark.slow] if cid in OWN_VARIANT else [])
            for cid in CASES]


def _render(case_id, tmp_path, monkeypatch, *options):
    monkeypatch.chdir(tmp_path)
    run = run_case(case_id, tmp_path, ("--kernel", "fused") + options)
    for i, result in enumerate(run.results):
        assert result.status == 0, f"run {i + 1} exited {result.status}: {result.stderr.strip()}"
    return run


def _check_against_c(case_id, run, limit):
    stderr = run.results[-1].stderr
    if case_id in NOT_COVERED:
        assert f"the fused kernel does not cover {NOT_COVERED[case_id]}" in stderr
    else:
        assert "reference path" not in stderr
    c_image = np.frombuffer(golden_bytes(CASES[case_id]["outputs"]["float"]), dtype="<f4")
    image = np.frombuffer(run.outputs["float"], dtype="<f4")
    assert np.isfinite(image).all()
    assert max_rel(c_image, image) <= limit


@pytest.mark.parametrize("case_id", _params())
def test_fused_float64_matches_c_program(case_id, tmp_path, monkeypatch):
    run = _render(case_id, tmp_path, monkeypatch)
    _check_against_c(case_id, run, 1e-5)


@pytest.mark.parametrize("case_id", _params())
def test_fused_float32_within_1e_3_of_c_program(case_id, tmp_path, monkeypatch):
    run = _render(case_id, tmp_path, monkeypatch, "--dtype", "float32")
    _check_against_c(case_id, run, FLOAT32_MAX_REL)


@pytest.mark.parametrize("case_id", list(CASES))
def test_reference_float32_within_1e_3_of_c_program(case_id, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    run = run_case(case_id, tmp_path, ("--kernel", "reference", "--dtype", "float32"))
    assert run.results[-1].status == 0, run.results[-1].stderr
    c_image = np.frombuffer(golden_bytes(CASES[case_id]["outputs"]["float"]), dtype="<f4")
    assert max_rel(c_image, np.frombuffer(run.outputs["float"], dtype="<f4")) <= FLOAT32_MAX_REL


# --- the kernel against the reference path in-process: images, gradients, fallbacks ---

HEAVYISH = ("-cell 70 80 90 75 85 95 -default_F 10 -lambda 1.0 -N 5 -distance 100 "
            "-pixel 0.1 -detpixels 48 -mosaic 0.5 -mosaic_dom 3 -phi 1 -osc 1 -phisteps 2 "
            "-hdivrange 0.5 -hdivsteps 2 -oversample 2")


def _simulator(args: str, kernel: str, say=None, dtype=torch.float64) -> Simulator:
    plan = resolve(parse_args(shlex.split(args)).state)
    return Simulator(plan.config, dtype=dtype, kernel=kernel, say=say)


def test_fused_and_reference_images_agree_in_process():
    fused_image = _simulator(HEAVYISH, "fused")().detach()
    reference_image = _simulator(HEAVYISH, "reference")().detach()
    scale = reference_image.abs().max()
    assert scale > 0
    assert torch.allclose(fused_image, reference_image, rtol=1e-9, atol=1e-12 * scale)


def test_gradients_take_the_reference_path_and_match_it():
    notes = []
    auto = _simulator(HEAVYISH, "fused", say=notes.append)
    reference = _simulator(HEAVYISH, "reference")
    grads = []
    for sim in (auto, reference):
        sim.detector.distance_m.requires_grad_(True)
        sim().sum().backward()
        grads.append(sim.detector.distance_m.grad)
    assert notes == []  # the switch for gradients is silent
    assert torch.isfinite(grads[0]) and grads[0] != 0
    assert torch.equal(grads[0], grads[1])


def test_one_kernel_serves_every_size(tmp_path, monkeypatch):
    # a cached package is used for other image sizes and step counts: nothing is rebuilt
    sim = _simulator(HEAVYISH, "fused")
    variant = fused.variant_of(sim.renderer())
    path = aot.package_path(variant, torch.device("cpu"))
    sim()
    assert path.exists()
    monkeypatch.setattr(aot, "_build", lambda *a: pytest.fail("rebuilt a cached kernel"))
    aot._LOADED.clear()
    for extra in ("-detpixels 31 -phisteps 3", "-detpixels 17 -mosaic_dom 5 -hdivsteps 3"):
        other = _simulator(HEAVYISH + " " + extra, "fused")
        assert fused.variant_of(other.renderer()) == variant
        image = other().detach()
        reference = _simulator(HEAVYISH + " " + extra, "reference")().detach()
        assert torch.allclose(image, reference, rtol=1e-9, atol=1e-12 * reference.abs().max())


def test_failed_build_says_one_line_and_renders_with_reference(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCHBRAGG_CACHE_DIR", str(tmp_path))
    aot._LOADED.clear()

    def no_compiler(*args):
        raise RuntimeError("no C++ compiler found\nsecond line")

    monkeypatch.setattr(aot, "_build", no_compiler)
    notes = []
    image = _simulator(HEAVYISH, "fused", say=notes.append)().detach()
    assert len(notes) == 2  # compiling..., then the failure
    assert notes[1].startswith("torchbragg: no compiled kernel here (RuntimeError: no C++ "
                               "compiler found)")
    assert torch.allclose(image, _simulator(HEAVYISH, "reference")().detach(), rtol=1e-12)
    # the failure is remembered: later runs do not try again
    monkeypatch.setattr(aot, "_build", lambda *a: pytest.fail("retried a failed build"))
    later = []
    _simulator(HEAVYISH, "fused", say=later.append)()
    assert len(later) == 1 and "no C++ compiler found" in later[0]


def test_auto_builds_only_for_large_images(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCHBRAGG_CACHE_DIR", str(tmp_path))
    aot._LOADED.clear()
    monkeypatch.setattr(aot, "_build", lambda *a: pytest.fail("built for a small image"))
    notes = []
    _simulator(HEAVYISH, "auto", say=notes.append)()
    assert notes == []
    assert list(tmp_path.iterdir()) == []


def test_a_new_build_removes_packages_of_older_kernel_sources(tmp_path):
    new = tmp_path / "plain-square-fudge1.0-float64-cpu-AVX2-0123456789abcdef.pt2"
    older = tmp_path / "plain-square-fudge1.0-float64-cpu-AVX2-fedcba9876543210.pt2"
    other_variant = tmp_path / "plain-square-fudge1.0-float64-single-cpu-AVX2-fedcba98.pt2"
    other_machine = tmp_path / "plain-square-fudge1.0-float64-cpu-AVX512-fedcba98.pt2"
    for path in (new, older, other_variant, other_machine):
        path.write_bytes(b"")
    aot._remove_stale(new)
    assert sorted(tmp_path.iterdir()) == sorted([new, other_variant, other_machine])


@pytest.mark.parametrize("extra", ["-mosaic 0.5 -mosaic_dom 5 -phisteps 3 -osc 2",
                                   "-mosaic 0.5 -mosaic_dom 7 -water 50 -oversample 2"])
def test_orientations_made_in_runs_take_the_kernel_run_by_run(monkeypatch, extra):
    """More orientations than are listed: the kernel renders each run; the runs add up."""
    from torchbragg import simulator as simulator_module
    from torchbragg.models import crystal as crystal_module

    reference = _simulator(f"{HEAVYISH} {extra}", "reference")().detach()
    for module in (crystal_module, simulator_module):
        monkeypatch.setattr(module, "LAZY_ORIENTATIONS", 4)
    notes = []
    sim = _simulator(f"{HEAVYISH} {extra}", "fused", say=notes.append)
    assert sim.crystal.orientation_count() > 4
    seen = []
    image = sim.render(progress=lambda done, total: seen.append(done)).image.detach()
    assert notes == []  # no fallback to the reference path
    assert seen[-1] == (reference > -1).sum() and seen == sorted(seen) and len(seen) > 2
    assert torch.allclose(image, reference, rtol=1e-9, atol=1e-12 * reference.abs().max())
