"""Orientations computed a run at a time (many phi steps x mosaic domains) give the image the
tensor of all of them gives, in bounded memory."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

import torchbragg as tb
from torchbragg import precedence
from torchbragg import render as render_module
from torchbragg import simulator as simulator_module
from torchbragg.models import crystal as crystal_module
from torchbragg.mosaic_stream import mosaic_stream
from torchbragg.rng import SharedState, mosaic_domains
from torchbragg.simulator import Simulator

BASE = ("-cell 70 80 90 75 85 95 -default_F 10 -lambda 1 -N 5 -distance 100 -detpixels 12 "
        "-misset 3 4 5")


@pytest.mark.parametrize("args", [
    "-phi 1 -osc 6 -phisteps 7",
    "-phi 0 -osc 6 -phisteps 7 --stale-phi0",
    "-phi -3 -osc 7 -phisteps 7 --stale-phi0",  # the step at exactly 0 is the fourth
    "-phi 0 -osc 2 -phisteps 3 -mosaic 0.5 -mosaic_dom 4",
    "-osc 2 -phisteps 3 -mosaic 0.5 -mosaic_dom 4 -oversample 2 -oversample_omega",
])
def test_runs_of_orientations_give_the_same_image(args, monkeypatch):
    if "--stale-phi0" in args:
        args = args.replace("--stale-phi0", "")
        stale = True
    else:
        stale = False
    whole = _stale(args, stale, None, monkeypatch)
    runs = _stale(args, stale, 5, monkeypatch)
    assert torch.allclose(runs, whole, rtol=1e-12, atol=0)
    assert whole.max() > 0


def _stale(args: str, stale: bool, lazy_above: int | None, monkeypatch) -> torch.Tensor:
    if lazy_above is not None:
        for module in (crystal_module, simulator_module):
            monkeypatch.setattr(module, "LAZY_ORIENTATIONS", lazy_above)
        for module in (render_module, simulator_module):
            monkeypatch.setattr(module, "LAZY_RUN", 3)  # runs that split phi steps too
    config = tb.Experiment.from_args(f"{BASE} {args}", kernel="reference").config
    config = dataclasses.replace(config, crystal=dataclasses.replace(config.crystal,
                                                                     stale_phi0=stale))
    with torch.no_grad():
        return Simulator(config, kernel="reference").render().image


def test_lazy_lattice_is_sliced_like_the_tensor(monkeypatch):
    monkeypatch.setattr(crystal_module, "LAZY_ORIENTATIONS", 3)
    exp = tb.Experiment.from_args(f"{BASE} -phi 1 -osc 6 -phisteps 4 -mosaic 0.5 "
                                  "-mosaic_dom 2", kernel="reference")
    crystal = exp.simulator.crystal
    runs = crystal().lattice_m
    assert isinstance(runs, crystal_module.LatticeRuns) and runs.shape == (8, 3, 3)
    monkeypatch.setattr(crystal_module, "LAZY_ORIENTATIONS", 100)
    whole = crystal().lattice_m
    assert torch.allclose(runs[0:8], whole, rtol=1e-14, atol=1e-24)
    assert torch.allclose(runs[-1:], whole[-1:], rtol=1e-14, atol=1e-24)
    with pytest.raises(ValueError, match="contiguous"):
        runs[0:8:2]


def test_domains_drawn_when_needed_give_the_same_image(monkeypatch):
    args = "-phi 0 -osc 2 -phisteps 3 -mosaic 0.5 -mosaic_dom 10"
    whole = _stale(args, False, None, monkeypatch)
    monkeypatch.setattr(precedence, "LAZY_DOMAINS", 4)
    drawn = _stale(args, False, 5, monkeypatch)  # runs of 3 orientations cross domain 9 -> 0
    assert torch.allclose(drawn, whole, rtol=1e-12, atol=0)


def test_mosaic_stream_redraws_the_c_domains_exactly():
    axes, angles = mosaic_domains(0.7, 3000, 12345678, SharedState())
    shared = SharedState()
    stream = mosaic_stream(0.7, 3000, 12345678, shared, every=512)
    expected = SharedState()
    mosaic_domains(0.7, 3000, 12345678, expected)
    assert np.array_equal(shared.table, expected.table)  # the noise stream goes on from here
    for start, stop in ((0, 3000), (700, 1500), (2999, 3000), (5, 5)):
        drawn_axes, drawn_angles = stream.draws(start, stop)
        assert np.array_equal(drawn_axes, axes[start:stop])
        assert np.array_equal(drawn_angles, angles[start:stop])


def test_trace_and_printout_with_orientations_in_runs(tmp_path, monkeypatch, capsys):
    from torchbragg.cli.main import main
    from torchbragg.tracecompare import compare_traces, parse_trace

    monkeypatch.chdir(tmp_path)
    args = (f"{BASE} -phi 1 -osc 6 -phisteps 7 -trace_pixel 4 3 -printout_pixel 3 4 -nonoise "
            "-nopgm -noprogress").split()
    assert main(args) == 0
    listed = capsys.readouterr().out
    for module in (crystal_module, simulator_module):
        monkeypatch.setattr(module, "LAZY_ORIENTATIONS", 5)
    for module in (render_module, simulator_module):
        monkeypatch.setattr(module, "LAZY_RUN", 3)
    assert main(args) == 0
    runs = capsys.readouterr().out
    result = compare_traces(parse_trace(listed), parse_trace(runs), rtol=1e-12)
    assert result.first is None and len(result.differences) > 100
    printout = [line for line in listed.splitlines() if line.startswith(("hkl=", " F_cell="))]
    assert printout and all(line in runs.splitlines() for line in printout)


def test_a_small_budget_keeps_the_printouts_last_step(tmp_path, monkeypatch, capsys):
    from torchbragg.cli.main import main

    monkeypatch.chdir(tmp_path)
    args = f"{BASE} -phi 1 -osc 6 -phisteps 7 -printout_pixel 3 4 -nonoise -nopgm " \
           "-noprogress --kernel reference".split()
    assert main(args) == 0
    whole = capsys.readouterr().out
    assert main(args + ["--memory-budget-mb", "0.001"]) == 0
    split = capsys.readouterr().out
    pick = [line for line in whole.splitlines() if line.startswith(("hkl=", " F_cell="))]
    assert pick and all(line in split.splitlines() for line in pick)


INPUTS = __import__("pathlib").Path(__file__).parent / "data" / "golden" / "inputs"


@pytest.mark.parametrize(("hkl", "switched"), [("interp.hkl", False), ("cubic.hkl", True)])
def test_interpolation_with_orientations_in_runs(monkeypatch, hkl, switched):
    """Interpolation switches off at the same step in loop order when orientations come in
    runs (each run looked at first), so the image is the same."""
    args = (f"-cell 100 100 100 90 90 90 -hkl {INPUTS / hkl} -default_F 7 -lambda 1.0 -N 2 "
            "-distance 100 -pixel 0.6 -interpolate -detpixels 24 -mosaic 0.5 -mosaic_dom 4 "
            "-phisteps 3 -osc 2")

    def render(lazy: bool):
        if lazy:
            for module in (crystal_module, simulator_module):
                monkeypatch.setattr(module, "LAZY_ORIENTATIONS", 5)
            for module in (render_module, simulator_module):
                monkeypatch.setattr(module, "LAZY_RUN", 5)  # runs that split phi steps too
        config = tb.Experiment.from_args(args, kernel="reference").config
        with torch.no_grad():
            return Simulator(config, kernel="reference").render(memory_budget_mb=1)

    looked = []
    original = render_module.Renderer._find_switch_off
    monkeypatch.setattr(render_module.Renderer, "_find_switch_off",
                        lambda self, *a: looked.append(1) or original(self, *a))
    whole = render(False)
    assert looked == []  # all orientations at once: no look-ahead
    runs = render(True)
    assert looked  # the runs were looked at first
    assert runs.interpolation == whole.interpolation
    assert (whole.interpolation.switched_off_at is not None) == switched
    assert torch.allclose(runs.image, whole.image, rtol=1e-12, atol=0)
    assert whole.image.max() > 0
