"""Pure tensor functions of the diffraction physics, written as nanoBragg evaluates them.

Shapes broadcast; "(...)" means any leading shape. Lengths are metres unless a name says
otherwise. Every function is differentiable where its value is. Where these differ from the
C program's arithmetic (series at the removable singularities x = 0, the reduced lattice
phase), it is for accuracy, and the docstrings say so.
"""

from __future__ import annotations

import math

import torch

from torchbragg.geometry import cross, dot, unitize

# Volume correction of the sphere transform relative to the parallelepiped (nanoBragg).
ROUND_SCALE = 0.723601254558268
# Gaussian and top-hat spot constants that match the parallelepiped's FWHM and volume.
GAUSS_WIDTH = 0.63
TOPHAT_RADIUS_SQR = 0.3969


# x^6 coefficient of sin(N x) / (N sin x) is -(N^2 - 1)(3 N^4 - 18 N^2 + 31) / 15120; its
# magnitude is at most 31/15120 times max(N, 1)^6 (the bound at N = 0, and 3/15120 for N >= 1).
SINCG_SERIES_X6 = 31.0 / 15120.0


def sincg_series_limit(dtype: torch.dtype) -> float:
    """Bound on |x| max(|N|, 1) below which :func:`sincg` uses its Taylor series.

    There the first omitted term, at most ``SINCG_SERIES_X6`` (|x| max(N, 1))^6 relative, is
    below half a unit in the last place of ``dtype`` (about 0.0062 in float64 and 0.18 in
    float32). Above it the quotient's x-derivative (size N^3 x / 3) carries a cancellation
    error of about eps N / x, at most 3 eps / limit^2 of it for N >= 2 (2e-11 in float64,
    1.2e-5 in float32); at N = 1 the derivative is 0 on both branches.
    """
    eps = torch.finfo(dtype).eps
    return (0.5 * eps / SINCG_SERIES_X6) ** (1.0 / 6.0)


def sincg_series(x: torch.Tensor, n: torch.Tensor) -> torch.Tensor:
    """sin(N x)/sin(x) = N [1 - (N^2-1) x^2/6 + (N^2-1)(3N^2-7) x^4/360] to order x^4.

    Exact at N = 1 (the value is 1) and at x = 0 (the value is N). Shapes broadcast.
    """
    x2 = x * x
    n2m1 = n * n - 1.0
    return n * (1.0 - n2m1 * x2 / 6.0 * (1.0 - (3.0 * n * n - 7.0) * x2 / 60.0))


def sincg_small(x: torch.Tensor, n: torch.Tensor) -> torch.Tensor:
    """(...) True where :func:`sincg` takes its series: |x| max(|N|, 1) below the limit."""
    dtype = torch.promote_types(x.dtype, n.dtype)
    return x.abs() * torch.clamp(n.detach().abs(), min=1.0) < sincg_series_limit(dtype)


def sincg(x: torch.Tensor, n: torch.Tensor) -> torch.Tensor:
    """Grating transform sin(N x)/sin(x), equal to N at x = 0.

    Near x = 0 the quotient's value is accurate but its x-derivative cancels catastrophically
    (two terms of size N/x leave one of size N^3 x), so when a gradient may be taken the
    Taylor series (:func:`sincg_series`) is used there instead; value and both derivatives
    are then accurate to the precision of ``x`` everywhere off the other zeros of sin(x) (see
    :func:`sincg_reduced` for those).

    Parameters
    ----------
    x:
        (...) phase, pi times a fractional Miller index.
    n:
        Number of unit cells along that axis (broadcasts with ``x``).
    """
    n = torch.as_tensor(n, dtype=x.dtype, device=x.device)
    if not (torch.is_grad_enabled() and (x.requires_grad or n.requires_grad)):
        # no derivative wanted: the quotient's value is accurate to rounding off x = 0
        zero = x == 0
        return torch.where(zero, n, torch.sin(n * x) / torch.where(zero, 1.0, torch.sin(x)))
    small = sincg_small(x, n)
    # each branch is fed only arguments where it is finite (the "safe where"), so the branch
    # not taken contributes a zero gradient, never 0 x inf
    series = sincg_series(torch.where(small, x, 0.0), n)
    x_quot = torch.where(small, 0.5 * math.pi, x)
    return torch.where(small, series, torch.sin(n * x_quot) / torch.sin(x_quot))


# 3 (sin x - x cos x) / x^3 = sum over k >= 1 of (-1)^(k+1) 6k / (2k+1)! x^(2k-2); nine terms
# reach double precision for |x| <= 1 (the tenth is 1.2e-18)
SINC3_SERIES = tuple((-1) ** (k + 1) * 6 * k / math.factorial(2 * k + 1) for k in range(1, 10))
# below this |x| the closed form cancels (sin x / x and cos x agree to x^2 / 3) and the
# series is used; above it the closed form loses at most a few units in the last place
SINC3_SERIES_LIMIT = 1.0


def sinc3_series(x: torch.Tensor) -> torch.Tensor:
    """(...) the Taylor series of :func:`sinc3`, exact in double precision for |x| <= 1."""
    x2 = x * x
    value = torch.full_like(x, SINC3_SERIES[-1])
    for c in reversed(SINC3_SERIES[:-1]):
        value = value * x2 + c
    return value


def sinc3(x: torch.Tensor) -> torch.Tensor:
    """Sphere transform 3 (sin x / x - cos x) / x^2, equal to 1 at x = 0. Shape (...).

    nanoBragg evaluates the closed form everywhere, which loses digits to cancellation near
    0 (all of them below |x| ~ 1e-8); the series is used there instead, with the safe-where
    pattern so neither branch yields non-finite gradients.
    """
    small = x.abs() < SINC3_SERIES_LIMIT
    series = sinc3_series(torch.where(small, x, 0.0))
    safe = torch.where(small, torch.ones_like(x), x)
    closed = 3.0 * (torch.sin(safe) / safe - torch.cos(safe)) / (safe * safe)
    return torch.where(small, series, closed)


def sincg_reduced(dh: torch.Tensor, h0: torch.Tensor, n: torch.Tensor) -> torch.Tensor:
    """sincg(pi h, N) for h = h0 + dh, from the offset dh to the nearest whole index h0.

    For whole N, sin(N pi h) / sin(pi h) = (-1)^(h0 (N - 1)) sin(N pi dh) / sin(pi dh): the
    phase stays within [-pi/2, pi/2], where only dh = 0 is a zero of sin(pi dh) (and the
    series takes it), so single precision stays accurate far from the origin. For any other
    N this reduced form is the definition: a smooth function of N, with the sign of the
    nearest whole N (the unreduced quotient has poles at whole h when N is not whole). The
    derivative in N is the reduced form's. ``dh``, ``h0`` (whole numbers) and ``n``
    broadcast.
    """
    n = torch.as_tensor(n, dtype=dh.dtype, device=dh.device)
    odd = (torch.remainder(h0, 2) != 0) & (torch.remainder(torch.round(n.detach()) - 1, 2) != 0)
    factor = sincg(math.pi * dh, n)
    return torch.where(odd, -factor, factor)


def square_factors(dhkl: torch.Tensor, hkl0: torch.Tensor,
                   n_cells: torch.Tensor) -> torch.Tensor:
    """(..., 3) per-axis parallelepiped factors sincg(pi h, N), from the reduced phase.

    nanoBragg skips axes with N <= 1 (factor 1). The reduced form is exactly 1 at N = 1
    (sin(pi d)/sin(pi d), sign +), so only N < 1 needs the gate: whole N give the C
    program's factors, and a continuous N is continuous at 1, where its derivative is the
    one from above (a refinement can leave N = 1).

    Parameters
    ----------
    dhkl, hkl0:
        (..., 3) offsets h - h0 and nearest whole Miller indices h0.
    n_cells:
        (3,) Na, Nb, Nc.
    """
    factors = sincg_reduced(dhkl, hkl0, n_cells)
    return torch.where(n_cells < 1, 1.0, factors)


def lattice_factor_square(dhkl: torch.Tensor, hkl0: torch.Tensor,
                          n_cells: torch.Tensor) -> torch.Tensor:
    """(...) parallelepiped F_latt: the product of :func:`square_factors` over the axes.

    (nanoBragg evaluates the unreduced sin(N pi h)/sin(pi h); at whole N the two agree to
    rounding, the reduced one being the more accurate.)
    """
    return square_factors(dhkl, hkl0, n_cells).prod(-1)


def reciprocal_distance_sqr(dhkl: torch.Tensor, reciprocal_invA: torch.Tensor,
                            n_cells: torch.Tensor) -> torch.Tensor:
    """|dh a* + dk b* + dl c*|^2 (1/Å^2) times (Na Nb Nc)^2, nanoBragg's spot radius measure.

    ``dhkl`` (..., 3) is the offset from the nearest reciprocal-lattice point and
    ``reciprocal_invA`` (3, 3) holds the unrotated a*, b*, c* as rows.
    """
    d = dhkl @ reciprocal_invA
    return (d * d).sum(-1) * n_cells.prod() ** 2


def lattice_factor(hkl: torch.Tensor, hkl0: torch.Tensor, shape: str, n_cells: torch.Tensor,
                   reciprocal_invA: torch.Tensor, fudge: float,
                   dhkl: torch.Tensor | None = None) -> torch.Tensor:
    """Lattice amplitude F_latt for nanoBragg's spot shapes.

    Parameters
    ----------
    hkl, hkl0:
        (..., 3) fractional and nearest whole Miller indices.
    shape:
        ``square`` (sincg), ``round`` (sphere), ``gauss`` or ``tophat``.
    n_cells:
        (3,) Na, Nb, Nc.
    reciprocal_invA:
        (3, 3) unrotated reciprocal vectors (rows), used by gauss and tophat.
    fudge:
        Width factor for the non-square shapes.
    dhkl:
        Offsets h - h0 computed elsewhere (in a lower precision than ``hkl``); all shapes
        work from the offsets, the square one in its reduced form (:func:`sincg_reduced`).
    """
    dhkl = hkl - hkl0 if dhkl is None else dhkl
    if shape == "square":
        return lattice_factor_square(dhkl, hkl0, n_cells)
    volume = n_cells.prod()
    if shape == "round":
        hrad_sqr = (dhkl * dhkl * n_cells * n_cells).sum(-1) * fudge
        safe = torch.where(hrad_sqr > 0, hrad_sqr, torch.ones_like(hrad_sqr))
        radius = torch.where(hrad_sqr > 0, torch.sqrt(safe), torch.zeros_like(hrad_sqr))
        return volume * ROUND_SCALE * sinc3(math.pi * radius)
    rad_star_sqr = reciprocal_distance_sqr(dhkl, reciprocal_invA, n_cells)
    if shape == "gauss":
        return volume * torch.exp(-(rad_star_sqr / GAUSS_WIDTH * fudge))
    if shape == "tophat":
        return volume * (rad_star_sqr * fudge < TOPHAT_RADIUS_SQR).to(dhkl.dtype)
    raise ValueError(f"unknown crystal shape {shape!r}")


def polarization_factor(kahn: float | torch.Tensor, incident: torch.Tensor,
                        diffracted: torch.Tensor, e_vector: torch.Tensor) -> torch.Tensor:
    """Kahn polarization correction 0.5 (1 + cos^2 2theta - K cos(2 psi) sin^2 2theta).

    Parameters
    ----------
    kahn:
        Kahn factor K (0 unpolarized, 1 fully polarized along ``e_vector``).
    incident, diffracted:
        (..., 3) unit vectors of the incident and diffracted beams.
    e_vector:
        (3,) polarization direction; psi is the azimuth of the diffracted ray about the
        incident beam, measured from the E vector's component normal to the beam.
    """
    b_in, e_in = polarization_axes(e_vector, incident)
    return kahn_factor(kahn, dot(incident, diffracted), dot(diffracted, b_in),
                       dot(diffracted, e_in))


def polarization_axes(e_vector: torch.Tensor,
                      incident: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Unit vectors B = E x incident and E' = incident x B, (..., 3) each.

    They span the plane normal to the incident beam, E' along the E vector's projection.
    """
    b_in = unitize(cross(e_vector.expand_as(incident), incident))
    return b_in, unitize(cross(incident, b_in))


def kahn_factor(kahn: float | torch.Tensor, cos2t: torch.Tensor, along_b: torch.Tensor,
                along_e: torch.Tensor) -> torch.Tensor:
    """Kahn's polarization factor from cos 2theta and the diffracted ray's components.

    ``along_b`` and ``along_e`` are the diffracted unit vector's components along the axes of
    :func:`polarization_axes`; their azimuth is -psi. Shapes broadcast.
    """
    cos2t_sqr = cos2t * cos2t
    psi = -torch.atan2(along_b, along_e)
    return 0.5 * (1.0 + cos2t_sqr - kahn * torch.cos(2 * psi) * (1.0 - cos2t_sqr))


def solid_angle(airpath: torch.Tensor, pixel_size: torch.Tensor,
                close_distance: torch.Tensor, point_pixel: bool) -> torch.Tensor:
    """Solid angle of a pixel (sr): (pixel/airpath)^2 times obliquity close_distance/airpath.

    With ``point_pixel`` only the inverse square law 1/airpath^2 remains (as nanoBragg).
    """
    if point_pixel:
        return 1.0 / (airpath * airpath)
    return pixel_size * pixel_size / (airpath * airpath) * close_distance / airpath


def capture_fraction(layer: torch.Tensor, thickstep: float | torch.Tensor,
                     mu: float | torch.Tensor, parallax: torch.Tensor) -> torch.Tensor:
    """Fraction of photons absorbed in sensor layer ``layer`` (0-based).

    exp(-t d mu / p) - exp(-(t+1) d mu / p), with d the layer thickness (m), mu the
    attenuation coefficient (1/m) and p = cos of the ray to the detector normal.
    """
    return (torch.exp(-layer * thickstep * mu / parallax)
            - torch.exp(-(layer + 1) * thickstep * mu / parallax))
