"""Sources made when needed (too many to list) give the image, stdout and gradients that the
listed sources give."""

from __future__ import annotations

import contextlib
import io

import pytest
import torch

import torchbragg as tb
from torchbragg import precedence
from torchbragg.cli.main import main

BASE = ("-cell 70 80 90 75 85 95 -default_F 10 -lambda 1 -N 5 -distance 100 -detpixels 10 "
        "-misset 3 4 5")


def _experiment(args: str, lazy: bool, monkeypatch) -> tb.Experiment:
    monkeypatch.setattr(precedence, "LAZY_SOURCES", 3 if lazy else 10**9)
    return tb.Experiment.from_args(f"{BASE} {args}", kernel="reference")


@pytest.mark.parametrize("args", [
    "-dispersion 2 -dispsteps 5",
    "-dispersion 2 -dispsteps 3 -hdivrange 0.4 -hdivsteps 3 -vdivrange 0.2 -vdivsteps 2",
    "-dispersion 2 -dispsteps 4 -oversample 2 -oversample_polar",
])
def test_made_sources_give_the_listed_image(args, monkeypatch):
    listed = _experiment(args, False, monkeypatch)
    made = _experiment(args, True, monkeypatch)
    assert made.config.beam.source_grid is not None and listed.config.beam.source_grid is None
    assert made.config.steps == listed.config.steps
    assert made.simulator._fused_gap(made.simulator.renderer()) is not None  # reference path
    with torch.no_grad():
        a, b = listed.render(), made.render()
    assert torch.allclose(b, a, rtol=1e-12, atol=0) and a.max() > 0


def test_made_sources_carry_gradients(monkeypatch):
    args = "-dispersion 2 -dispsteps 3 -hdivrange 0.4 -hdivsteps 3"
    grads = []
    for lazy in (False, True):
        exp = _experiment(args, lazy, monkeypatch)
        names = ["beam.dispersion_percent", "beam.divergence_mrad"]
        values = {n: torch.as_tensor(exp.get(n), dtype=torch.float64).requires_grad_()
                  for n in names}
        exp.render(values).sum().backward()
        grads.append([values[n].grad for n in names])
    for listed, made in zip(*grads, strict=True):
        assert torch.allclose(made, listed, rtol=1e-10, atol=0)


def _stdout(argv: list[str]) -> str:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        status = main(argv)
    assert status == 0, err.getvalue()
    return out.getvalue()


def test_made_sources_print_the_c_lines(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    argv = f"{BASE} -dispersion 2 -dispsteps 4 -hdivrange 0.4 -hdivsteps 2 -nonoise -nopgm " \
           "-noprogress --kernel reference".split()
    monkeypatch.setattr(precedence, "LAZY_SOURCES", 10**9)
    listed = _stdout(argv)
    monkeypatch.setattr(precedence, "LAZY_SOURCES", 3)
    assert _stdout(argv) == listed
