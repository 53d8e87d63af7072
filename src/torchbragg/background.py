r"""Diffuse scattering of amorphous material (water, air, ice) on a pixel detector, as nonBragg.

Physics: a molecule scatters |F(s)|^2 times an electron's intensity, F taken from a table of
sin(theta)/lambda = s (:mod:`torchbragg.stol`). Summed incoherently over the molecules in the
beam, a pixel receives

    I = r_e^2 x fluence x molecules x <sign(F) F^2 x polarization x solid angle x weight>

with r_e^2 the Thomson cross section (m^2), fluence in photons/m^2 and the average taken over
the sub-pixels (``oversample^2`` per pixel) and sources (divergence x dispersion, or a source
file) of the C program: the sum divided by steps = sources x oversample^2. The solid angle is
that of the whole pixel at each sub-pixel's position ((pixel/airpath)^2 x close_distance /
airpath), the polarization is Kahn's factor for each source, and a negative F gives a negative
intensity (``sign``), as in nonBragg. Source weights multiply each source's term (nanoBragg
ignores them; nonBragg does not).

Everything here is a torch function of torch tensors, differentiable in every continuous
input (distance, beam centre, rotations, pixel size, wavelengths, fluence, molecule count and
through it sample thickness, density and molecular weight, the F table), vectorised over
pixels x sub-pixels x sources and evaluated in chunks that bound the working memory. The
detector is placed with the C program's arithmetic (:func:`place_detector`), so that printed
geometry matches it digit for digit.

Use on its own (:func:`render_amorphous` with :func:`place_detector`, :class:`PixelSampler`,
:class:`SourceSet` and :func:`molecule_count`), or on the detector and beam of a Bragg
:class:`~torchbragg.simulator.Simulator` (:func:`background_for_simulator`), whose image it
can be added to.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import torch

from torchbragg.config import AVOGADRO, R_E_SQR_M2
from torchbragg.stol import StructureFactorCurve

__all__ = [
    "AmorphousImage",
    "LastSamples",
    "Placement",
    "PixelSampler",
    "Polarization",
    "SourceSet",
    "amorphous_scale",
    "background_for_simulator",
    "last_samples",
    "molecule_count",
    "place_detector",
    "polar_axes",
    "polarization_factor",
    "render_amorphous",
    "roi_pixels",
    "scattering_stol",
    "source_terms",
]

DBL_MIN = 2.2250738585072014e-308
# Elements (pixel x sub-pixel x source) per chunk: small on CPU (cache), large on a GPU.
DEFAULT_CHUNK_ELEMENTS = {"cpu": 1 << 17, "cuda": 1 << 24}

Tensor = torch.Tensor


# --------------------------------------------------------------------------------------------
# Vectors of shape (3,), with the C program's order of operations.
# --------------------------------------------------------------------------------------------


def _t(value, like: Tensor | None = None) -> Tensor:
    """A float64 tensor of ``value`` (on ``like``'s device)."""
    device = None if like is None else like.device
    return torch.as_tensor(value, dtype=torch.float64, device=device)


def _sincos(angle: Tensor) -> tuple[Tensor, Tensor]:
    """sin and cos of a scalar angle: the C library's values unless a gradient is wanted.

    (torch's own sine differs from glibc's in the last bit for about 0.3 % of arguments.)
    """
    if angle.requires_grad:
        return torch.sin(angle), torch.cos(angle)
    value = float(angle)
    return _t(math.sin(value), angle), _t(math.cos(value), angle)


def vdot(u: Tensor, v: Tensor) -> Tensor:
    """u . v over the last axis, summed x, y, z in that order (as the C code)."""
    return u[..., 0] * v[..., 0] + u[..., 1] * v[..., 1] + u[..., 2] * v[..., 2]


def vcross(u: Tensor, v: Tensor) -> Tensor:
    """u x v over the last axis."""
    return torch.stack([u[..., 1] * v[..., 2] - u[..., 2] * v[..., 1],
                        u[..., 2] * v[..., 0] - u[..., 0] * v[..., 2],
                        u[..., 0] * v[..., 1] - u[..., 1] * v[..., 0]], -1)


def vunit(v: Tensor) -> tuple[Tensor, Tensor]:
    """(unit vector, length) of ``v`` (..., 3); the zero vector stays zero, as in the C code."""
    mag = torch.sqrt(vdot(v, v))
    safe = torch.where(mag != 0, mag, torch.ones_like(mag))
    return torch.where(mag[..., None] != 0, v / safe[..., None], torch.zeros_like(v)), mag


def rotate_xyz(v: Tensor, angles: Tensor) -> Tensor:
    """Rotate (3,) ``v`` about x, then y, then z by ``angles`` (3,) radians.

    As the C function ``rotate``: an axis whose angle is exactly 0 is skipped (which keeps
    the signs of zero components), unless that angle needs a gradient.
    """
    x, y, z = v[0], v[1], v[2]
    rx, ry, rz = angles[0], angles[1], angles[2]
    if rx.requires_grad or float(rx) != 0:
        s, c = _sincos(rx)
        y, z = y * c + z * -s, y * s + z * c
    if ry.requires_grad or float(ry) != 0:
        s, c = _sincos(ry)
        x, z = x * c + z * s, x * -s + z * c
    if rz.requires_grad or float(rz) != 0:
        s, c = _sincos(rz)
        x, y = x * c + y * -s, x * s + y * c
    return torch.stack([x, y, z])


def rotate_axis(v: Tensor, axis: Tensor, phi: Tensor) -> Tensor:
    """Rotate (3,) ``v`` by ``phi`` radians about ``axis`` (used as given, not normalised).

    The C function ``rotate_axis``: axis (axis . v)(1 - cos) + v cos + (axis x v) sin.
    """
    s, c = _sincos(phi)
    d = (axis[0] * v[0] + axis[1] * v[1] + axis[2] * v[2]) * (1.0 - c)
    return torch.stack([axis[0] * d + v[0] * c + (-axis[2] * v[1] + axis[1] * v[2]) * s,
                        axis[1] * d + v[1] * c + (+axis[2] * v[0] - axis[0] * v[2]) * s,
                        axis[2] * d + v[2] * c + (-axis[1] * v[0] + axis[0] * v[1]) * s])


# --------------------------------------------------------------------------------------------
# Detector placement.
# --------------------------------------------------------------------------------------------


@dataclass
class Placement:
    """The detector after nonBragg's pivot and rotations (tensors, metres).

    Attributes
    ----------
    fdet, sdet, odet : Tensor, shape (3,)
        Fast, slow and normal unit vectors (odet = fdet x sdet).
    pix0 : Tensor, shape (3,)
        Sample to the outer corner of the first pixel.
    beam : Tensor, shape (3,)
        Unit vector along the x-rays.
    close_distance, distance : Tensor, shape ()
        Sample to detector plane, and to the direct-beam spot along the beam.
    xbeam, ybeam : Tensor, shape ()
        Direct-beam spot along the fast and slow axes, from the first pixel's corner.
    xclose, yclose : Tensor, shape ()
        Point of closest approach along the fast and slow axes.
    """

    fdet: Tensor
    sdet: Tensor
    odet: Tensor
    pix0: Tensor
    beam: Tensor
    close_distance: Tensor
    distance: Tensor
    xbeam: Tensor
    ybeam: Tensor
    xclose: Tensor
    yclose: Tensor


def place_detector(*, beam: Sequence[float] | Tensor = (1.0, 0.0, 0.0),
                   fdet: Sequence[float] | Tensor = (0.0, 0.0, 1.0),
                   sdet: Sequence[float] | Tensor = (0.0, -1.0, 0.0),
                   distance_m: float | Tensor = 0.1,
                   close_distance_m: float | Tensor | None = None,
                   beam_xy_m: Sequence[float] | Tensor = (0.0, 0.0),
                   close_xy_m: Sequence[float] | Tensor = (0.0, 0.0),
                   pivot: str = "beam",
                   rotations_rad: Sequence[float] | Tensor = (0.0, 0.0, 0.0),
                   twotheta_rad: float | Tensor = 0.0,
                   twotheta_axis: Sequence[float] | Tensor = (0.0, 1.0, 0.0)) -> Placement:
    """Place the detector as nonBragg does.

    The beam, fast and slow vectors are made unit and the normal is fdet x sdet (a given
    normal is not used). With ``pivot="sample"`` the point of closest approach ``close_xy_m``
    at ``close_distance_m`` is set first and swung with the detector (rotations about x, y, z,
    then two-theta about ``twotheta_axis``, which is used as given); with ``pivot="beam"`` the
    direct-beam spot ``beam_xy_m`` at ``distance_m`` along the beam stays where it is.
    Without ``close_distance_m`` it is distance x (beam . rotated normal). Every argument may
    be a tensor requiring a gradient.

    Parameters
    ----------
    beam, fdet, sdet : sequence of 3 float or Tensor (3,)
        Beam direction and detector axes (any length).
    distance_m : float or Tensor
        Sample to direct-beam spot along the beam (m).
    close_distance_m : float or Tensor, optional
        Sample to detector plane (m).
    beam_xy_m, close_xy_m : sequence of 2 float or Tensor (2,)
        Beam spot (Xbeam, Ybeam) and closest point (Xclose, Yclose) on the detector (m).
    pivot : {"beam", "sample"}
        What stays put while the detector rotates.
    rotations_rad : sequence of 3 float or Tensor (3,)
        Rotations about x, y, z (rad).
    twotheta_rad : float or Tensor
        Swing about ``twotheta_axis`` (rad).
    twotheta_axis : sequence of 3 float or Tensor (3,)

    Returns
    -------
    Placement
    """
    beam, _ = vunit(_t(beam))
    f, _ = vunit(_t(fdet))
    s, _ = vunit(_t(sdet))
    o, _ = vunit(vcross(f, s))
    angles, twotheta, axis = _t(rotations_rad), _t(twotheta_rad), _t(twotheta_axis)
    ratio = vdot(beam, rotate_xyz(o, angles))
    ratio = torch.where(ratio == 0, _t(DBL_MIN), ratio)
    distance = _t(distance_m)
    close = ratio * distance if close_distance_m is None else _t(close_distance_m)
    distance = close / ratio
    pix0 = None
    if pivot == "sample":
        xc, yc = _t(close_xy_m)[0], _t(close_xy_m)[1]
        pix0 = -xc * f - yc * s + close * o
        pix0 = rotate_axis(rotate_xyz(pix0, angles), axis, twotheta)
    f, s, o = (rotate_axis(rotate_xyz(v, angles), axis, twotheta) for v in (f, s, o))
    if pivot == "beam":
        xb, yb = _t(beam_xy_m)[0], _t(beam_xy_m)[1]
        pix0 = -xb * f - yb * s + distance * beam
    if pix0 is None:
        raise ValueError(f"pivot must be 'beam' or 'sample', got {pivot!r}")
    close = vdot(pix0, o)
    to_spot = close / ratio * beam - pix0
    return Placement(fdet=f, sdet=s, odet=o, pix0=pix0, beam=beam, close_distance=close,
                     distance=close / ratio, xbeam=vdot(f, to_spot), ybeam=vdot(s, to_spot),
                     xclose=-vdot(pix0, f), yclose=-vdot(pix0, s))


@dataclass
class PixelSampler:
    """Sub-pixel positions and solid angles on a placed detector (nonBragg's loops).

    Attributes
    ----------
    placement : Placement
    pixel_size_m : Tensor, shape ()
    fpixels, spixels : int
        Detector size in pixels (fast, slow).
    oversample : int
        Sub-pixels per pixel edge; sub-pixel q = subS x oversample + subF (slow-major).
    curved : bool
        Every sub-pixel at ``distance`` from the sample (its flat y and z read as angles).
    point_pixel : bool
        Solid angle 1/airpath^2 (no pixel area, no obliquity).
    """

    placement: Placement
    pixel_size_m: Tensor
    fpixels: int
    spixels: int
    oversample: int = 1
    curved: bool = False
    point_pixel: bool = False

    @property
    def subpixels(self) -> int:
        """Sub-pixels per pixel (oversample^2)."""
        return self.oversample * self.oversample

    def positions(self, fast: Tensor, slow: Tensor, q: Tensor) -> Tensor:
        """Lab positions (m) of sub-pixel centres, shape (P, Q, 3).

        ``fast``, ``slow`` (P,) pixel indices and ``q`` (Q,) sub-pixel indices.
        """
        p, n = self.placement, self.oversample
        sub = self.pixel_size_m / n
        q = q.to(fast.device)
        f_det = sub * (fast[:, None] * n + q[None, :] % n).to(sub.dtype) + sub / 2.0
        s_det = sub * (slow[:, None] * n + q[None, :] // n).to(sub.dtype) + sub / 2.0
        pos = f_det[..., None] * p.fdet + s_det[..., None] * p.sdet + p.pix0
        return self._curve(pos) if self.curved else pos

    def _curve(self, pos: Tensor) -> Tensor:
        """nonBragg's curved detector: flat y, z over the distance are angles about sdet, fdet."""
        p = self.placement
        start = (p.distance * p.beam).expand_as(pos)
        swung = _rotate_rows(start, p.sdet, pos[..., 1] / p.distance)
        return _rotate_rows(swung, p.fdet, pos[..., 2] / p.distance)

    def geometry(self, fast: Tensor, slow: Tensor, q: Tensor
                 ) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """Diffracted unit vectors, airpath, solid angle and position of sub-pixels.

        Returns
        -------
        diffracted : Tensor, shape (P, Q, 3)
        airpath : Tensor, shape (P, Q)
            Sample to sub-pixel (m).
        omega : Tensor, shape (P, Q)
            Solid angle of the pixel seen from there (sr): (pixel/airpath)^2 x
            close_distance/airpath, or 1/airpath^2 for a point pixel.
        position : Tensor, shape (P, Q, 3)
        """
        pos = self.positions(fast, slow, q)
        airpath = torch.sqrt(pos[..., 0] * pos[..., 0] + pos[..., 1] * pos[..., 1]
                             + pos[..., 2] * pos[..., 2])
        diffracted = pos / airpath[..., None]
        if self.point_pixel:
            omega = 1.0 / airpath / airpath
        else:
            size = self.pixel_size_m
            omega = size * size / airpath / airpath * self.placement.close_distance / airpath
        return diffracted, airpath, omega, pos


def _rotate_rows(v: Tensor, axis: Tensor, phi: Tensor) -> Tensor:
    """Rotate rows of ``v`` (..., 3) about (3,) ``axis`` by angles ``phi`` (...)."""
    s, c = torch.sin(phi)[..., None], torch.cos(phi)[..., None]
    d = vdot(axis, v)[..., None] * (1.0 - c)
    return axis * d + v * c + vcross(axis.expand_as(v), v) * s


# --------------------------------------------------------------------------------------------
# Sources and the per-step physics.
# --------------------------------------------------------------------------------------------


@dataclass
class SourceSet:
    """X-ray sources: where the x-rays come from, their wavelengths and weights.

    Attributes
    ----------
    incident : Tensor, shape (S, 3)
        Unit vectors along which the x-rays travel (source to sample).
    wavelength_m : Tensor, shape (S,)
    weight : Tensor, shape (S,)
        Multiplies each source's intensity (the C program's source "I" column).
    """

    incident: Tensor
    wavelength_m: Tensor
    weight: Tensor

    @classmethod
    def from_positions(cls, positions_m, wavelengths_m, weights=None) -> SourceSet:
        """Sources at ``positions_m`` (S, 3) (points up-beam of the sample, any distance).

        ``weights`` default to 1.
        """
        pos = _t(positions_m).reshape(-1, 3)
        incident, _ = vunit(-pos)
        waves = _t(wavelengths_m).reshape(-1)
        weight = torch.ones_like(waves) if weights is None else _t(weights).reshape(-1)
        return cls(incident=incident, wavelength_m=waves, weight=weight)

    def __len__(self) -> int:
        return int(self.wavelength_m.shape[0])

    def to(self, device) -> SourceSet:
        """The same sources on ``device``."""
        return SourceSet(self.incident.to(device), self.wavelength_m.to(device),
                         self.weight.to(device))


@dataclass
class Polarization:
    """Kahn factor and the axes it is measured against, per source (see :func:`polar_axes`)."""

    kahn: Tensor
    b_in: Tensor  # (S, 3)
    e_in: Tensor  # (S, 3)
    off: bool  # -nopolar: factor 1
    needed: bool  # psi matters: kahn != 0 or a gradient in kahn


def polar_axes(kahn, polar_vector: Tensor, incident: Tensor, nopolar: bool = False
               ) -> Polarization:
    """Per-source axes of Kahn's factor: B = unit(E x incident), E' = unit(incident x B).

    Parameters
    ----------
    kahn : float or Tensor
        Kahn polarization factor (0: unpolarized, nonBragg's default).
    polar_vector : Tensor, shape (3,)
        The E vector of the beam (unit).
    incident : Tensor, shape (S, 3)
    nopolar : bool
        No polarization correction at all.
    """
    kahn = _t(kahn, incident)
    b_in, _ = vunit(vcross(polar_vector.expand_as(incident), incident))
    e_in, _ = vunit(vcross(incident, b_in))
    needed = bool(kahn.requires_grad or float(kahn) != 0.0)
    return Polarization(kahn=kahn, b_in=b_in, e_in=e_in, off=nopolar, needed=needed)


def source_terms(diffracted: Tensor, sources: SourceSet, curve: StructureFactorCurve,
                 coefficients: tuple[Tensor, Tensor], polar: Polarization
                 ) -> tuple[Tensor, Tensor, Tensor]:
    """Per-step sign(F) F^2 x polarization x weight, for every sub-pixel and source.

    Parameters
    ----------
    diffracted : Tensor, shape (..., 3)
        Unit vectors from the sample to sub-pixels.
    sources : SourceSet
        S sources.
    curve : StructureFactorCurve
    coefficients : (Tensor, Tensor)
        ``curve.coefficients()``, computed once.
    polar : Polarization

    Returns
    -------
    term : Tensor, shape (..., S)
    stol : Tensor, shape (..., S)
        sin(theta)/lambda (1/m): half the length of (diffracted - incident) / lambda.
    F : Tensor, shape (..., S)
    """
    d = [diffracted[..., k, None] for k in range(3)]
    inc = [sources.incident[:, k] for k in range(3)]
    stol = scattering_stol(d, inc, sources.wavelength_m)
    F = curve.evaluate(stol, *coefficients)
    term = F.abs() * F
    if not polar.off:
        term = term * polarization_factor(d, inc, polar)
    weight = sources.weight
    if weight.requires_grad or not bool((weight == 1).all()):
        term = term * weight
    return term, stol, F


def scattering_stol(d: list[Tensor], inc: list[Tensor], wavelength: Tensor) -> Tensor:
    """sin(theta)/lambda = |diffracted - incident| / (2 lambda) (1/m).

    ``d``: diffracted components, (..., 1) each; ``inc``: incident components and
    ``wavelength`` (m), (S,) each. The difference is taken component by component (no
    cancellation at small angles, as in the C program); the division by lambda comes after
    the square root (the C program divides each component: the same to rounding).
    """
    u = [d[k] - inc[k] for k in range(3)]
    sq = torch.addcmul(torch.addcmul(u[0] * u[0], u[1], u[1]), u[2], u[2])
    if sq.requires_grad:  # forward scattering (sq = 0): gradient 0, not inf x 0
        positive = sq > 0
        root = torch.where(positive, torch.sqrt(torch.where(positive, sq, 1.0)), 0.0)
        return root * (0.5 / wavelength)
    return torch.sqrt(sq) * (0.5 / wavelength)


def polarization_factor(d: list[Tensor], inc: list[Tensor], polar: Polarization) -> Tensor:
    """Kahn's factor 0.5 (1 + cos^2 2theta - K cos(2 psi) sin^2 2theta) (nonBragg's form).

    ``d``: diffracted components (..., 1) each; ``inc``: incident components (S,) each. psi,
    the azimuth of the diffracted ray about the incident beam from the E vector, is only
    computed when it matters (K != 0), as in the C program.
    """
    cos2t = torch.addcmul(torch.addcmul(d[0] * inc[0], d[1], inc[1]), d[2], inc[2])
    if not polar.needed:
        return torch.addcmul(torch.full_like(cos2t, 0.5), cos2t, cos2t, value=0.5)
    c2 = cos2t * cos2t
    b, e = polar.b_in, polar.e_in
    along_e = d[0] * e[:, 0] + d[1] * e[:, 1] + d[2] * e[:, 2]
    along_b = d[0] * b[:, 0] + d[1] * b[:, 1] + d[2] * b[:, 2]
    # cos(2 psi) with psi = -atan2(along_b, along_e), written without the angle; a ray along
    # the beam (no azimuth) takes psi = 0 as atan2(0, 0) does, and a finite gradient
    e2, b2 = along_e * along_e, along_b * along_b
    den = e2 + b2
    cos2psi = torch.where(den > 0, (e2 - b2) / torch.where(den > 0, den, 1.0), 1.0)
    return 0.5 * (1.0 + c2 - polar.kahn * cos2psi * (1.0 - c2))


# --------------------------------------------------------------------------------------------
# Scale and image.
# --------------------------------------------------------------------------------------------


def molecule_count(thickness_m, height_m, width_m, density_g_per_m3=1.0e6,
                   molecular_weight=18.0, molecules=None) -> Tensor:
    """Molecules in the illuminated sample: volume x density x Avogadro / molecular weight.

    Parameters
    ----------
    thickness_m, height_m, width_m : float or Tensor
        Sample size along the beam (x), vertical (y) and horizontal (z), metres.
    density_g_per_m3 : float or Tensor
        Density (g/m^3; 1 g/cm^3 is 1e6).
    molecular_weight : float or Tensor
        g/mol.
    molecules : float or Tensor, optional
        A molecule count to honour instead: the density becomes molecules / volume /
        Avogadro x molecular weight, and the count is recomputed from it (as nonBragg).

    Returns
    -------
    Tensor, shape ()
    """
    volume = _t(thickness_m) * _t(height_m) * _t(width_m)
    density = _t(density_g_per_m3)
    given = molecules is not None and (
        (torch.is_tensor(molecules) and molecules.requires_grad) or float(molecules) != 0)
    if given:
        density = _t(molecules) / volume / AVOGADRO * _t(molecular_weight)
    return volume * density * AVOGADRO / _t(molecular_weight)


def amorphous_scale(fluence, molecules, steps: int) -> Tensor:
    """Photons per unit of summed sign(F) F^2 x polar x omega: r_e^2 fluence molecules / steps.

    ``fluence`` in photons/m^2; ``steps`` = sources x oversample^2.
    """
    return R_E_SQR_M2 * _t(fluence) * _t(molecules) / steps


@dataclass
class AmorphousImage:
    """A rendered background.

    Attributes
    ----------
    image : Tensor, shape (spixels, fpixels)
        Photons per pixel (0 outside the region of interest).
    omega_sum : Tensor, shape ()
        Sum of the pixel solid angle over every rendered sub-pixel (sr), as nonBragg prints it
        (not divided by the sub-pixel count).
    """

    image: Tensor
    omega_sum: Tensor


def roi_pixels(sampler: PixelSampler, roi: Sequence[int] | None, device=None
               ) -> tuple[Tensor, Tensor]:
    """(fast, slow) indices (int64, raster order) of the pixels inside ``roi``.

    ``roi`` = (fast_min, fast_max, slow_min, slow_max), inclusive, as ``-roi``; None: all.
    """
    xmin, xmax, ymin, ymax = (0, sampler.fpixels - 1, 0, sampler.spixels - 1) if roi is None \
        else roi
    f0, s0 = max(xmin, 0), max(ymin, 0)
    fast = torch.arange(f0, max(f0, min(xmax, sampler.fpixels - 1) + 1), device=device)
    slow = torch.arange(s0, max(s0, min(ymax, sampler.spixels - 1) + 1), device=device)
    grid_s, grid_f = torch.meshgrid(slow, fast, indexing="ij")
    return grid_f.reshape(-1), grid_s.reshape(-1)


def _chunks(total: int, size: int):
    for start in range(0, total, size):
        yield slice(start, min(start + size, total))


def render_amorphous(sampler: PixelSampler, sources: SourceSet, curve: StructureFactorCurve,
                     scale, *, kahn=0.0, polar_vector=(0.0, 0.0, 1.0), nopolar: bool = False,
                     roi: Sequence[int] | None = None, chunk_elements: int | None = None,
                     progress: Callable[[int], None] | None = None,
                     workers: int | None = None) -> AmorphousImage:
    """Render nonBragg's amorphous-scattering image.

    Each pixel is sum over sub-pixels q and sources s of sign(F) F^2 x polar x omega_q x
    weight_s (F at the step's sin(theta)/lambda), times ``scale``
    (:func:`amorphous_scale`). Work is done for chunks of pixels, sub-pixels and sources
    of about ``chunk_elements`` steps. On the CPU without gradients, chunks of pixels run in
    ``workers`` threads, each with single-threaded torch operations (many small parallel
    operations stall whenever another process holds a core; whole chunks do not).

    Parameters
    ----------
    sampler : PixelSampler
    sources : SourceSet
    curve : StructureFactorCurve
    scale : float or Tensor
        Photons per summed unit.
    kahn : float or Tensor
        Kahn polarization factor.
    polar_vector : sequence of 3 float or Tensor (3,)
        The beam's E vector (unit).
    nopolar : bool
        Leave out the polarization factor.
    roi : (int, int, int, int), optional
        fast_min, fast_max, slow_min, slow_max (inclusive) to render; others stay 0.
    chunk_elements : int, optional
        Steps per chunk (default: 2^17 on CPU, 2^24 on CUDA).
    progress : callable, optional
        Called with the number of pixels done after each chunk of pixels, in order.
    workers : int, optional
        Threads for CPU chunks (default: torch's thread count).

    Returns
    -------
    AmorphousImage
    """
    device = sampler.placement.pix0.device
    budget = chunk_elements or DEFAULT_CHUNK_ELEMENTS.get(device.type, 1 << 17)
    fast, slow = roi_pixels(sampler, roi, device)
    n_q, n_s = sampler.subpixels, len(sources)
    s_chunk = max(1, min(n_s, budget))
    q_chunk = max(1, min(n_q, budget // s_chunk))
    p_chunk = max(1, budget // (q_chunk * s_chunk))
    shared = (curve.coefficients(),
              polar_axes(kahn, _t(polar_vector, sources.incident), sources.incident, nopolar))

    def pixel_chunk(pixels: slice) -> tuple[Tensor, Tensor]:
        total, omega_sum = 0.0, 0.0
        for qs in _chunks(n_q, q_chunk):
            q = torch.arange(qs.start, qs.stop, device=device)
            diffracted, _, omega, _ = sampler.geometry(fast[pixels], slow[pixels], q)
            omega_sum = omega_sum + omega.sum()
            per_q = 0.0
            for ss in _chunks(n_s, s_chunk):
                term = source_terms(diffracted, _subset(sources, ss), curve, shared[0],
                                    _polar_subset(shared[1], ss))[0]
                per_q = per_q + term.sum(-1)
            total = total + (per_q * omega).sum(-1)
        return total * scale, omega_sum

    values, omega_sum = [], _t(0.0).to(device)
    for pixels, (value, omega) in _map_chunks(pixel_chunk, list(_chunks(len(fast), p_chunk)),
                                              device, workers, scale, sampler, sources, curve):
        values.append(value)
        omega_sum = omega_sum + omega
        if progress is not None:
            progress(pixels.stop)
    flat = torch.zeros(sampler.spixels * sampler.fpixels, dtype=torch.float64, device=device)
    if values:
        flat = flat.index_copy(0, slow * sampler.fpixels + fast, torch.cat(values))
    return AmorphousImage(image=flat.reshape(sampler.spixels, sampler.fpixels),
                          omega_sum=omega_sum)


def _wants_grad(*things) -> bool:
    """Whether autograd is on and any tensor in ``things`` (or their fields) requires it."""
    if not torch.is_grad_enabled():
        return False
    for thing in things:
        if isinstance(thing, Tensor):
            if thing.requires_grad:
                return True
        elif isinstance(thing, torch.nn.Module):
            if any(p.requires_grad for p in thing.parameters()):
                return True
        elif hasattr(thing, "__dict__"):
            if _wants_grad(*vars(thing).values()):
                return True
    return False


def _map_chunks(work, chunks: list[slice], device, workers, *inputs):
    """Yield (chunk, work(chunk)) in order; on the CPU without gradients, in threads."""
    threads = torch.get_num_threads()
    workers = threads if workers is None else workers
    if device.type != "cpu" or _wants_grad(*inputs):
        for chunk in chunks:
            yield chunk, work(chunk)
        return
    torch.set_num_threads(1)
    try:
        if workers <= 1 or len(chunks) <= 1:
            for chunk in chunks:
                yield chunk, work(chunk)
            return
        pool = ThreadPoolExecutor(max_workers=workers)
        try:
            yield from zip(chunks, pool.map(work, chunks), strict=True)
        finally:  # on an interrupt, chunks not started yet are dropped, not waited for
            pool.shutdown(wait=True, cancel_futures=True)
    finally:
        torch.set_num_threads(threads)


def _subset(sources: SourceSet, part: slice) -> SourceSet:
    if part.start == 0 and part.stop == len(sources):
        return sources
    return SourceSet(sources.incident[part], sources.wavelength_m[part], sources.weight[part])


def _polar_subset(polar: Polarization, part: slice) -> Polarization:
    return Polarization(polar.kahn, polar.b_in[part], polar.e_in[part], polar.off,
                        polar.needed)


@dataclass
class LastSamples:
    """Per rendered pixel, the quantities of its last step (last sub-pixel, last source).

    nonBragg keeps these in variables after a pixel's loops and uses them for ``-Fmap``
    (F), ``-printout`` and ``-img`` (sin(theta)/lambda, its table interval, polarization,
    solid angle, position). All have shape (P,) (position (P, 3)).
    """

    stol: Tensor
    interval: Tensor
    F: Tensor
    polar: Tensor
    omega: Tensor
    position: Tensor


def last_samples(sampler: PixelSampler, sources: SourceSet, curve: StructureFactorCurve,
                 fast: Tensor, slow: Tensor, *, kahn=0.0, polar_vector=(0.0, 0.0, 1.0),
                 nopolar: bool = False) -> LastSamples:
    """The last step's quantities for pixels (``fast``, ``slow``) (see :class:`LastSamples`)."""
    q = torch.tensor([sampler.subpixels - 1], device=fast.device)
    last = _subset(sources, slice(len(sources) - 1, len(sources)))
    diffracted, _, omega, pos = sampler.geometry(fast, slow, q)
    polar = polar_axes(kahn, _t(polar_vector, last.incident), last.incident, nopolar)
    _, stol, F = source_terms(diffracted, last, curve, curve.coefficients(), polar)
    d = [diffracted[..., k, None] for k in range(3)]
    inc = [last.incident[:, k] for k in range(3)]
    factor = torch.ones_like(stol) if nopolar else polarization_factor(d, inc, polar)
    return LastSamples(stol=stol.reshape(-1), interval=curve.interval(stol).reshape(-1),
                       F=F.reshape(-1), polar=factor.reshape(-1), omega=omega.reshape(-1),
                       position=pos.reshape(-1, 3))


# --------------------------------------------------------------------------------------------
# With a Bragg simulation.
# --------------------------------------------------------------------------------------------


def background_for_simulator(sim, curve: StructureFactorCurve, molecules, *,
                             oversample: int | None = None,
                             chunk_elements: int | None = None) -> Tensor:
    """Amorphous background on the pixels of a Bragg :class:`~torchbragg.simulator.Simulator`.

    The detector (placement, pixel size, curvature, point pixels) and the beam (sources,
    wavelengths, Kahn factor, fluence) are the simulator's, so the result (spixels, fpixels,
    photons) can be added to its image; gradients reach the simulator's parameters. The
    simulator's sources all weigh 1 (nanoBragg ignores source weights) and its sensor
    thickness is not applied.

    Parameters
    ----------
    sim : torchbragg.simulator.Simulator
    curve : StructureFactorCurve
    molecules : float or Tensor
        Molecules in the beam (:func:`molecule_count`).
    oversample : int, optional
        Sub-pixels per pixel edge (default: the simulator's).
    chunk_elements : int, optional
        See :func:`render_amorphous`.
    """
    det, beam = sim.detector, sim.beam
    frame = det.frame(beam.direction)
    n = oversample or sim.config.sampling.oversample
    placement = Placement(fdet=frame.fdet, sdet=frame.sdet, odet=frame.odet, pix0=frame.pix0,
                          beam=beam.direction, close_distance=frame.close_distance,
                          distance=frame.distance, xbeam=frame.beam_f, ybeam=frame.beam_s,
                          xclose=frame.close_f, yclose=frame.close_s)
    sampler = PixelSampler(placement, det.pixel_size_m, det.fpixels, det.spixels, n,
                           curved=det.config.curved, point_pixel=det.config.point_pixel)
    incident = beam.incident()
    sources = SourceSet(incident, beam.source_wavelengths(), torch.ones_like(incident[:, 0]))
    scale = amorphous_scale(beam.fluence_per_m2, molecules, len(sources) * n * n)
    return render_amorphous(sampler, sources, curve.to(incident.device), scale,
                            kahn=beam.polarization, polar_vector=beam.polar_vector,
                            nopolar=beam.nopolar, roi=sim.config.detector.roi,
                            chunk_elements=chunk_elements).image
