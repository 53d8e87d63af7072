"""Recover detector and crystal parameters from one noisy still, from the image alone.

A real crystal (``data/A.mat``, ``data/scaled.hkl``) on a region of a Pilatus-like detector
is rendered and given Poisson noise; the model then starts from a wrong distance (+1 mm),
beam centre (+2 pixels), orientation (+0.2 degree about each axis), cell (+0.5 %), crystal
size (N -20 %) and mosaic spread (x2), and L-BFGS on the Poisson likelihood of the pixels
near spots brings it back. Prints a table (true, start, refined, standard error from the
Hessian) and exits non-zero unless the fit converged and every parameter is within 3
standard errors of the truth.

    python examples/refine_geometry.py
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import torch

import torchbragg as tb
from torchbragg.refine import near_spots, refine

DATA = Path(__file__).parent / "data"
PIXEL_MM = 0.172
NAMES = ["detector.distance_mm", "detector.beam_fs_mm", "crystal.misset_deg", "crystal.cell_A",
         "crystal.n_cells", "crystal.mosaic_spread_deg"]


def experiment() -> tb.Experiment:
    """The true experiment: a still on a 300 x 300 pixel region off the beam centre."""
    return tb.Experiment(
        detector=tb.detector(pixels=(2463, 2527), pixel_size_mm=PIXEL_MM, distance_mm=231.27,
                             beam_center_mm=(217.74, 213.91), roi=(1050, 1349, 1050, 1349)),
        crystal=tb.crystal(mosflm_matrix=DATA / "A.mat", n_cells=(12, 15, 10),
                           mosaic_spread_deg=0.05, mosaic_domains=8),
        beam=tb.beam(wavelength_A=0.9768, fluence_per_m2=1e27),
        structure_factors=tb.structure_factors(hkl_file=DATA / "scaled.hkl"),
        sampling=tb.sampling(oversample=1))


def start_values(truth: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The deliberately wrong starting point."""
    return {
        "detector.distance_mm": truth["detector.distance_mm"] + 1.0,
        "detector.beam_fs_mm": truth["detector.beam_fs_mm"] + 2 * PIXEL_MM,
        "crystal.misset_deg": truth["crystal.misset_deg"] + 0.2,
        "crystal.cell_A": truth["crystal.cell_A"] * 1.005,
        "crystal.n_cells": truth["crystal.n_cells"] * 0.8,
        "crystal.mosaic_spread_deg": truth["crystal.mosaic_spread_deg"] * 2,
    }


def main() -> int:
    """Simulate, perturb, refine, report."""
    torch.manual_seed(2026)
    exp = experiment()
    truth = {name: exp.get(name) for name in NAMES}
    with torch.no_grad():
        observed = torch.poisson(exp.render())
    for name, value in start_values(truth).items():
        exp.set(name, value)
    with torch.no_grad():
        predicted = exp.render()
    # pixels where the data or the starting model has spots, with room for them to move
    pixels = (near_spots(observed, 0.02, 4) | near_spots(predicted, 0.02, 4)) & \
        exp.simulator.rendered
    print(f"{int(observed.sum())} photons; fitting {int(pixels.sum())} pixels near spots")
    began = time.perf_counter()
    result = refine(exp, observed, NAMES, pixels=pixels)
    print(f"{result.iterations} iterations, {result.evaluations} renders, "
          f"{time.perf_counter() - began:.0f} s; -log L {result.start_loss:.1f} -> "
          f"{result.loss:.1f}")
    print(result.table(truth))
    return report(result, truth)


def report(result, truth: dict[str, torch.Tensor]) -> int:
    """0 when the fit converged and every parameter is within 3 standard errors of the truth."""
    if not result.converged:
        print("FAILED: the refinement did not converge")
        return 1
    bad = []
    for name in result.names:
        miss = (result.values[name] - truth[name]).abs()
        err = result.standard_errors[name]
        if not bool((miss <= 3 * err).all()) or not bool(torch.isfinite(err).all()):
            bad.append(name)
    if bad:
        print("FAILED: more than 3 standard errors from the truth: " + ", ".join(bad))
        return 1
    print("OK: every parameter within 3 standard errors of the truth")
    return 0


if __name__ == "__main__":
    sys.exit(main())
