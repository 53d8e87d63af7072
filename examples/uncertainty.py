"""Are the Hessian standard errors right? Refine 20 noise realisations and compare.

One still of a cubic crystal (Gaussian spots, so that the likelihood has no side lobes
to trap the fit) is given Poisson noise 20 times (seeds 0-19); each noisy image
is refined from the same wrong start (distance +0.2 mm, beam centre +1/4 pixel, misset
+0.05 degree about each axis). The spread (standard deviation) of the 20 refined values is
compared with the standard errors the Hessian of the likelihood predicts (their mean over
the 20 fits). Prints a table and exits
non-zero unless every refinement converged and, for every parameter, the spread and the
predicted error agree within 30 %.

    python examples/uncertainty.py
"""

from __future__ import annotations

import sys
import time

import torch

import torchbragg as tb
from torchbragg.refine import near_spots, refine

NAMES = ["detector.distance_mm", "detector.beam_fs_mm", "crystal.misset_deg"]
REALISATIONS = 20


def experiment() -> tb.Experiment:
    """A small still: 100 Å cubic cell, 128 x 128 pixels."""
    return tb.Experiment(
        detector=tb.detector(pixels=128, pixel_size_mm=0.2, distance_mm=80),
        crystal=tb.crystal(cell=(100, 100, 100, 90, 90, 90), n_cells=(8, 8, 8), shape="gauss",
                           misset_deg=(12, 27, 5)),
        beam=tb.beam(wavelength_A=1.3, fluence_per_m2=2e28),
        structure_factors=tb.structure_factors(default_F=100),
        sampling=tb.sampling(oversample=1))


def start(exp: tb.Experiment, truth: dict[str, torch.Tensor]) -> None:
    """Put the experiment at the common wrong start."""
    exp.set("detector.distance_mm", truth["detector.distance_mm"] + 0.2)
    exp.set("detector.beam_fs_mm", truth["detector.beam_fs_mm"] + 0.05)
    exp.set("crystal.misset_deg", truth["crystal.misset_deg"] + 0.05)


def main() -> int:
    """Refine every realisation, then compare spread and predicted errors."""
    exp = experiment()
    truth = {n: exp.get(n) for n in NAMES}
    with torch.no_grad():
        expected = exp.render()
    pixels = near_spots(expected, 0.05, 2)
    print(f"{float(expected.sum()):.0f} photons expected; fitting {int(pixels.sum())} pixels")
    refined, errors = [], []
    began = time.perf_counter()
    for seed in range(REALISATIONS):
        torch.manual_seed(seed)
        observed = torch.poisson(expected)
        start(exp, truth)
        result = refine(exp, observed, NAMES, pixels=pixels)
        if not result.converged:
            print(f"FAILED: realisation {seed} did not converge")
            return 1
        refined.append(torch.cat([result.values[n].reshape(-1) for n in NAMES]))
        errors.append(torch.cat([result.standard_errors[n].reshape(-1) for n in NAMES]))
    print(f"{REALISATIONS} refinements in {time.perf_counter() - began:.0f} s")
    return report(torch.stack(refined), torch.stack(errors), truth)


def report(refined: torch.Tensor, errors: torch.Tensor, truth: dict) -> int:
    """Table of truth, mean refined, spread and Hessian error; 0 when they agree within 30 %."""
    labels = [n if truth[n].numel() == 1 else f"{n}[{i}]"
              for n in NAMES for i in range(truth[n].numel())]
    true = torch.cat([truth[n].reshape(-1) for n in NAMES])
    spread = refined.std(dim=0)
    predicted = errors.mean(dim=0)
    print(f"{'parameter':26s}{'true':>12s}{'mean':>12s}{'spread':>11s}{'hessian':>11s}"
          f"{'ratio':>8s}")
    ok = True
    for i, label in enumerate(labels):
        ratio = float(spread[i] / predicted[i])
        ok = ok and abs(ratio - 1) <= 0.3
        print(f"{label:26s}{float(true[i]):12.5f}{float(refined[:, i].mean()):12.5f}"
              f"{float(spread[i]):11.3g}{float(predicted[i]):11.3g}{ratio:8.2f}")
    if not ok:
        print("FAILED: spread and Hessian standard error differ by more than 30 %")
        return 1
    print("OK: spread of refined values and Hessian standard errors agree within 30 %")
    return 0


if __name__ == "__main__":
    sys.exit(main())
