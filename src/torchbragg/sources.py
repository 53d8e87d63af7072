"""Beam sources: nanoBragg's divergence x dispersion grid, and step auto-selection."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from torchbragg.geometry import rotate_axis

SOURCE_DISTANCE_M = 10.0


@dataclass(frozen=True)
class StepRange:
    """A sampled range: number of steps, full range and step size (units of the quantity)."""

    steps: int
    range: float
    step: float


def auto_range(steps: int, rng: float, step: float, one_sided: bool = False) -> StepRange:
    """Fill in a (steps, range, step) triple where some are "not given" (<= 0 or < 0).

    This is nanoBragg's rule for divergence and dispersion: range and step given -> steps =
    ceil(range/step); range alone -> 2 steps one range apart; steps and range -> step =
    range/(steps-1); steps alone -> range 1 (radian or fraction). ``one_sided`` selects the
    variant used for detector layers, where range alone gives step = range/2.
    """
    if steps <= 0:
        if rng < 0.0:
            if step <= 0.0:
                return StepRange(1, 0.0, 0.0)
            return StepRange(2, step, step)
        if step <= 0.0:
            return StepRange(2, rng, rng / 2 if one_sided else rng)
        return StepRange(math.ceil(rng / step), rng, step)
    if rng < 0.0:
        if step <= 0.0:
            full = 0.5e-6 if one_sided else 1.0
            return StepRange(steps, full, full / steps)
        return StepRange(2, step, step)
    if step <= 0.0:
        steps = max(steps, 2)
        return StepRange(steps, rng, rng / (steps - 1))
    return StepRange(steps, rng, step)


def sane(r: StepRange) -> StepRange:
    """NanoBragg's sanity rule: a non-positive range, step or count means one step, no range."""
    if r.range <= 0.0 or r.step <= 0.0 or r.steps <= 0:
        return StepRange(1, 0.0, 0.0)
    return r


def divergence_offsets(h: StepRange, v: StepRange, round_div: bool) -> list[tuple[float, float]]:
    """(hdiv, vdiv) angle pairs (radians) of the divergence grid, in nanoBragg's order.

    With ``round_div`` the rectangular grid is trimmed to an ellipse (the C program's test
    ``4 * test > 1.1``, which allows for the half-step offset of even grids).
    """
    pairs = []
    for ih in range(h.steps):
        for iv in range(v.steps):
            hd = h.step * ih - h.range / 2.0
            vd = v.step * iv - v.range / 2.0
            if round_div and _ellipse_test(hd, h) + _ellipse_test(vd, v) > 1.1 / 4.0:
                continue
            pairs.append((hd, vd))
    return pairs


def _ellipse_test(x: float, r: StepRange) -> float:
    """One axis of nanoBragg's ellipse test; with zero range it is NaN, which never trims."""
    with np.errstate(divide="ignore", invalid="ignore"):
        num = np.float64(x * x - r.step * r.step / 4.0 * (1 - r.steps % 2))
        return float(num / np.float64(r.range) / np.float64(r.range))


def dispersion_wavelengths(wavelength_m: float, d: StepRange) -> list[float]:
    """Wavelengths (metres) spanning the fractional dispersion ``d`` around ``wavelength_m``."""
    return [wavelength_m * (1.0 + d.step * i - d.range / 2.0) for i in range(d.steps)]


def grid_sources(beam: np.ndarray, polar: np.ndarray, offsets: list[tuple[float, float]],
                 wavelengths: list[float]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Source positions, weights and wavelengths for each divergence offset and wavelength.

    The source sits ``SOURCE_DISTANCE_M`` up-beam; it is swung by ``vdiv`` about the
    polarization (E) vector and then by ``hdiv`` about beam x E.

    Returns
    -------
    positions (n, 3) in metres (not unit), weights (n,), wavelengths (n,) in metres.
    """
    b = torch.tensor(beam, dtype=torch.float64)
    p = torch.tensor(polar, dtype=torch.float64)
    vert = torch.linalg.cross(b, p)
    vert = vert / torch.linalg.norm(vert) if float(torch.linalg.norm(vert)) else vert
    start = -SOURCE_DISTANCE_M * b
    positions, lambdas = [], []
    for hd, vd in offsets:
        pos = rotate_axis(rotate_axis(start, p, torch.tensor(vd, dtype=torch.float64)), vert,
                          torch.tensor(hd, dtype=torch.float64))
        for lam in wavelengths:
            positions.append(pos.numpy())
            lambdas.append(lam)
    n = len(lambdas)
    weights = np.full(n, 1.0 / n if n else 0.0)
    return np.array(positions).reshape(n, 3), weights, np.array(lambdas, dtype=np.float64)
