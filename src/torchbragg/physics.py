"""Pure tensor functions of the diffraction physics, written as nanoBragg evaluates them.

Shapes broadcast; "(...)" means any leading shape. Lengths are metres unless a name says
otherwise. Every function is differentiable where its value is (guards keep gradients finite
at the removable singularities x = 0).
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


def sincg(x: torch.Tensor, n: torch.Tensor) -> torch.Tensor:
    """Grating transform sin(N x)/sin(x), equal to N at x = 0.

    Parameters
    ----------
    x:
        (...) phase, pi times a fractional Miller index.
    n:
        Number of unit cells along that axis (broadcasts with ``x``).
    """
    zero = x == 0
    # sin(x) + 1 at x = 0 keeps the unused branch (and its gradient) finite
    ratio = torch.sin(n * x) / (torch.sin(x) + zero)
    return torch.where(zero, n, ratio)


def sinc3(x: torch.Tensor) -> torch.Tensor:
    """Sphere transform 3 (sin x / x - cos x) / x^2, equal to 1 at x = 0. Shape (...)."""
    zero = x == 0
    safe = torch.where(zero, torch.ones_like(x), x)
    value = 3.0 * (torch.sin(safe) / safe - torch.cos(safe)) / (safe * safe)
    return torch.where(zero, torch.ones_like(x), value)


def lattice_factor_square(hkl: torch.Tensor, n_cells: torch.Tensor) -> torch.Tensor:
    """Parallelepiped crystal: product of sincg(pi h, Na) over axes with more than one cell.

    Parameters
    ----------
    hkl:
        (..., 3) fractional Miller indices.
    n_cells:
        (3,) Na, Nb, Nc.
    """
    factors = sincg(math.pi * hkl, n_cells)
    return torch.where(n_cells > 1, factors, 1.0).prod(-1)


def sincg_reduced(dh: torch.Tensor, h0: torch.Tensor, n: torch.Tensor) -> torch.Tensor:
    """sincg(pi h, N) for h = h0 + dh, from the offset dh to the nearest whole h0.

    For whole N, sin(N pi h) / sin(pi h) = (-1)^(h0 (N - 1)) sin(N pi dh) / sin(pi dh); the
    small phase keeps single precision accurate far from the origin. ``dh``, ``h0`` and ``n``
    broadcast.
    """
    n_value = n.detach()
    odd = torch.remainder(h0 * (n_value - 1), 2) != 0
    # sin(N pi d + pi h0 (N - N)) has the value of sin(N pi d) and the N-derivative of
    # sin(N pi h), so gradients with respect to N stay those of the unreduced form
    x = math.pi * dh
    zero = x == 0
    numerator = torch.sin(n * x + math.pi * h0 * (n - n_value))
    factor = torch.where(zero, n, numerator / (torch.sin(x) + zero))
    return torch.where(odd, -factor, factor)


def lattice_factor_square_reduced(dhkl: torch.Tensor, hkl0: torch.Tensor,
                                  n_cells: torch.Tensor) -> torch.Tensor:
    """:func:`lattice_factor_square` from the offsets d = h - h0 (see :func:`sincg_reduced`).

    (nanoBragg evaluates the unreduced form, which float64 reproduces exactly.)
    """
    factors = sincg_reduced(dhkl, hkl0, n_cells)
    return torch.where(n_cells > 1, factors, 1.0).prod(-1)


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
        Offsets h - h0 computed elsewhere (in a lower precision than ``hkl``): all shapes
        then work from them, the square one in its reduced form.
    """
    if shape == "square":
        if dhkl is not None:
            return lattice_factor_square_reduced(dhkl, hkl0, n_cells)
        return lattice_factor_square(hkl, n_cells)
    volume = n_cells.prod()
    dhkl = hkl - hkl0 if dhkl is None else dhkl
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
