"""Beam sources: nanoBragg's divergence x dispersion grid, and step auto-selection."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

SOURCE_DISTANCE_M = 10.0


@dataclass(frozen=True)
class StepRange:
    """A sampled range: number of steps, full range and step size (units of the quantity)."""

    steps: int
    range: float
    step: float


def auto_range(steps: int, rng: float, step: float, one_sided: bool = False,
               names: str = "range / step") -> StepRange:
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
        return StepRange(step_count(rng, step, names), rng, step)
    if rng < 0.0:
        if step <= 0.0:
            full = 0.5e-6 if one_sided else 1.0
            return StepRange(steps, full, full / steps)
        return StepRange(2, step, step)
    if step <= 0.0:
        steps = max(steps, 2)
        return StepRange(steps, rng, rng / (steps - 1))
    return StepRange(steps, rng, step)


INT_MAX = 2**31 - 1  # nanoBragg's step counts are C ints


def step_count(rng: float, step: float, names: str = "range / step") -> int:
    """ceil(range / step) as nanoBragg computes a step count; too many is a SetupError."""
    ratio = rng / step
    if not ratio <= INT_MAX:  # also NaN and inf
        from torchbragg.errors import SetupError

        raise SetupError(f"{names} = {ratio:g} steps, more than nanoBragg's step counts (C "
                         f"int) hold")
    return math.ceil(ratio)


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


def c_rotate_axis(v: list[float], axis: list[float], phi: float) -> list[float]:
    """Rotate ``v`` about unit ``axis`` by ``phi`` radians with nanoBragg's float operations.

    Plain floats in the C program's order, so that source positions (and the signs of their
    zero components, which the C program prints) come out bit for bit.
    """
    s, c = math.sin(phi), math.cos(phi)
    d = (axis[0] * v[0] + axis[1] * v[1] + axis[2] * v[2]) * (1.0 - c)
    return [axis[0] * d + v[0] * c + (-axis[2] * v[1] + axis[1] * v[2]) * s,
            axis[1] * d + v[1] * c + (+axis[2] * v[0] - axis[0] * v[2]) * s,
            axis[2] * d + v[2] * c + (-axis[1] * v[0] + axis[0] * v[1]) * s]


def _c_unit_cross(u: list[float], v: list[float]) -> list[float]:
    w = [u[1] * v[2] - u[2] * v[1], u[2] * v[0] - u[0] * v[2], u[0] * v[1] - u[1] * v[0]]
    n = math.sqrt(w[0] * w[0] + w[1] * w[1] + w[2] * w[2])
    return [x / n for x in w] if n != 0 else [0.0, 0.0, 0.0]


def grid_sources(beam: np.ndarray, polar: np.ndarray, offsets: list[tuple[float, float]],
                 wavelengths: list[float]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Source positions, weights and wavelengths for each divergence offset and wavelength.

    The source sits ``SOURCE_DISTANCE_M`` up-beam; it is swung by ``vdiv`` about the
    polarization (E) vector and then by ``hdiv`` about beam x E. Every source has weight
    1/n (printed by the C program, not applied to intensities).

    Returns
    -------
    positions (n, 3) in metres (not unit), weights (n,), wavelengths (n,) in metres.
    """
    positions = np.repeat(grid_positions(beam, polar, offsets), len(wavelengths), axis=0)
    lambdas = np.tile(np.asarray(wavelengths, dtype=np.float64), len(offsets))
    n = len(lambdas)
    weights = np.full(n, 1.0 / n if n else 0.0)
    return positions.reshape(n, 3), weights, lambdas


@dataclass(frozen=True, eq=False)
class SourceGrid:
    """The grid of sources (divergence points x wavelengths) without listing every source.

    For runs with too many sources to hold: source ``i`` sits at divergence point
    ``i // n_wavelengths`` with wavelength ``i % n_wavelengths`` (wavelength fastest, as
    nanoBragg orders them). ``positions_m`` (n_div, 3) are the C program's source positions,
    ``offsets_rad`` (n_div, 2) their (horizontal, vertical) divergence angles.
    """

    positions_m: np.ndarray
    offsets_rad: np.ndarray
    wavelength_m: float
    dispersion: StepRange

    @property
    def count(self) -> int:
        """Number of sources."""
        return len(self.positions_m) * self.dispersion.steps

    def split(self, index: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(divergence point, wavelength) indices of sources ``index``."""
        return np.divmod(np.asarray(index, dtype=np.int64), self.dispersion.steps)

    def wavelengths(self, index: np.ndarray) -> np.ndarray:
        """Wavelengths (m) of sources ``index``, as dispersion_wavelengths computes them."""
        d = self.dispersion
        j = self.split(index)[1].astype(np.float64)
        return self.wavelength_m * (1.0 + d.step * j - d.range / 2.0)

    def line(self, i: int) -> str:
        """The C program's printed line for source ``i``: position, weight, wavelength."""
        x, y, z = (float(v) for v in self.positions_m[i // self.dispersion.steps])
        weight, wave = 1.0 / self.count, float(self.wavelengths(np.array([i]))[0])
        return f"{x:g} {y:g} {z:g}   {weight:g} {wave:g}"


def grid_positions(beam: np.ndarray, polar: np.ndarray,
                   offsets: list[tuple[float, float]]) -> np.ndarray:
    """(n, 3) source positions (metres) of divergence offsets, as grid_sources places them."""
    b, p = [float(x) for x in beam], [float(x) for x in polar]
    vert = _c_unit_cross(b, p)
    start = [-SOURCE_DISTANCE_M * x for x in b]
    return np.array([c_rotate_axis(c_rotate_axis(start, p, vd), vert, hd)
                     for hd, vd in offsets], dtype=np.float64).reshape(-1, 3)
