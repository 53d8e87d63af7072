"""Beam sources: nanoBragg's divergence x dispersion grid, and step auto-selection."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

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


def divergence_offsets(h: StepRange, v: StepRange, round_div: bool) -> np.ndarray:
    """(n, 2) (hdiv, vdiv) angle pairs (radians) of the divergence grid, in nanoBragg's order.

    With ``round_div`` the rectangular grid is trimmed to an ellipse (the C program's test
    ``4 * test > 1.1``, which allows for the half-step offset of even grids). The grid is
    built with array operations in the C program's order of operations (16 bytes a point).
    """
    ih, iv = divergence_indices(h, v, round_div)
    return np.stack((_angles(h)[ih], _angles(v)[iv]), axis=-1)


def divergence_indices(h: StepRange, v: StepRange, round_div: bool
                       ) -> tuple[np.ndarray, np.ndarray]:
    """(n,) horizontal and vertical step indices of the grid points kept, in loop order."""
    if not round_div:
        ih, iv = np.divmod(np.arange(h.steps * v.steps, dtype=np.int64), v.steps)
        return ih, iv
    test = _ellipse_test(_angles(h), h)[:, None] + _ellipse_test(_angles(v), v)[None, :]
    return np.nonzero(~(test > 1.1 / 4.0))  # NaN (a zero range) never trims


def _angles(r: StepRange) -> np.ndarray:
    """(steps,) angles (radians) of one axis of the grid: step * i - range / 2."""
    return r.step * np.arange(r.steps, dtype=np.float64) - r.range / 2.0


def _ellipse_test(x: np.ndarray, r: StepRange) -> np.ndarray:
    """One axis of nanoBragg's ellipse test; with zero range it is NaN, which never trims."""
    with np.errstate(divide="ignore", invalid="ignore"):
        num = x * x - r.step * r.step / 4.0 * (1 - r.steps % 2)
        return num / np.float64(r.range) / np.float64(r.range)


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


def grid_sources(beam: np.ndarray, polar: np.ndarray, offsets: np.ndarray,
                 wavelengths: list[float]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Source positions, weights and wavelengths for each divergence offset and wavelength.

    The source sits ``SOURCE_DISTANCE_M`` up-beam; it is swung by ``vdiv`` about the
    polarization (E) vector and then by ``hdiv`` about beam x E. Every source has weight
    1/n (printed by the C program, not applied to intensities).

    Returns
    -------
    positions (n, 3) in metres (not unit), weights (n,), wavelengths (n,) in metres.
    """
    offsets = np.asarray(offsets, dtype=np.float64).reshape(-1, 2)
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
    _last: list = field(default_factory=lambda: [-1, ""], repr=False)  # line()'s cache

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
        """The C program's printed line for source ``i``: position, weight, wavelength.

        Plain floats, the formula of :meth:`wavelengths`; lines are asked for in order, so
        the last divergence point's text is kept (millions of lines print in seconds).
        """
        d = self.dispersion
        point, j = divmod(i, d.steps)
        if self._last[0] != point:
            x, y, z = self.positions_m[point].tolist()
            self._last[:] = [point, f"{x:g} {y:g} {z:g}   {1.0 / self.count:g} "]
        return f"{self._last[1]}{self.wavelength_m * (1.0 + d.step * j - d.range / 2.0):g}"


def grid_positions(beam: np.ndarray, polar: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """(n, 3) source positions (metres) of divergence offsets (n, 2), as nanoBragg places them.

    Each distinct angle's sine and cosine is taken once (as ``c_rotate_axis`` takes them);
    the swing about beam x E then runs on arrays with the same operations in the same order,
    so the positions equal ``c_rotate_axis(c_rotate_axis(start, E, vd), beam x E, hd)``.
    """
    offsets = np.asarray(offsets, dtype=np.float64).reshape(-1, 2)
    b, p = [float(x) for x in beam], [float(x) for x in polar]
    vert = _c_unit_cross(b, p)
    start = [-SOURCE_DISTANCE_M * x for x in b]
    vds, v_of = _distinct(offsets[:, 1])
    swung = np.array([c_rotate_axis(start, p, vd) for vd in vds]).reshape(-1, 3)[v_of]
    hds, h_of = _distinct(offsets[:, 0])
    sin = np.array([math.sin(hd) for hd in hds])[h_of]
    cos = np.array([math.cos(hd) for hd in hds])[h_of]
    return _rotate_rows(swung, vert, sin, cos)


def _distinct(values: np.ndarray) -> tuple[list[float], np.ndarray]:
    """Distinct values (bit patterns: -0.0 is not 0.0) and each entry's index among them."""
    bits, where = np.unique(values.view(np.int64), return_inverse=True)
    return bits.view(np.float64).tolist(), where.reshape(-1)


def _rotate_rows(v: np.ndarray, axis: list[float], sin: np.ndarray, cos: np.ndarray
                 ) -> np.ndarray:
    """Rows of ``v`` (n, 3) rotated about ``axis`` by angles given by sin, cos (n,).

    c_rotate_axis's formula and order of operations, on arrays.
    """
    x, y, z = v[:, 0], v[:, 1], v[:, 2]
    d = (axis[0] * x + axis[1] * y + axis[2] * z) * (1.0 - cos)
    return np.stack([axis[0] * d + x * cos + (-axis[2] * y + axis[1] * z) * sin,
                     axis[1] * d + y * cos + (+axis[2] * x - axis[0] * z) * sin,
                     axis[2] * d + z * cos + (-axis[1] * x + axis[0] * y) * sin], axis=-1)
