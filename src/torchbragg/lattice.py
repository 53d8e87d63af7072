"""Unit-cell vectors as nanoBragg builds them (pure, differentiable tensor functions).

Real-space vectors are in Å here (the crystal model converts to metres), reciprocal vectors in
1/Å. A "cell matrix" holds one vector per row: rows a, b, c (or a*, b*, c*), shape (3, 3).
"""

from __future__ import annotations

import math

import torch

from torchbragg.geometry import cross, dot, norm, rotate_xyz


def reciprocal_from_cell(cell: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Reciprocal vectors in nanoBragg's default orientation from cell constants.

    Parameters
    ----------
    cell:
        (6,) a, b, c in Å and alpha, beta, gamma in radians.

    Returns
    -------
    (3, 3) reciprocal cell matrix (rows a*, b*, c*, 1/Å) with a* along x and b* in the x-y
    plane, and the cell volume in Å^3.
    """
    a, b, c, al, be, ga = cell.unbind(-1)
    s = (al + be + ga) / 2
    skew = torch.abs(torch.sin(s) * torch.sin(s - al) * torch.sin(s - be) * torch.sin(s - ga))
    volume = 2.0 * a * b * c * torch.sqrt(skew)
    a_s, b_s, c_s = b * c * torch.sin(al) / volume, c * a * torch.sin(be) / volume, \
        a * b * torch.sin(ga) / volume
    cos_al_s = (torch.cos(be) * torch.cos(ga) - torch.cos(al)) / (torch.sin(be) * torch.sin(ga))
    cos_be_s = (torch.cos(ga) * torch.cos(al) - torch.cos(be)) / (torch.sin(ga) * torch.sin(al))
    cos_ga_s = (torch.cos(al) * torch.cos(be) - torch.cos(ga)) / (torch.sin(al) * torch.sin(be))
    sin_ga_s = torch.clamp(c / (volume * a_s * b_s), max=1.0)
    zero = torch.zeros_like(a)
    a_star = torch.stack((a_s, zero, zero))
    b_star = torch.stack((b_s * cos_ga_s, b_s * sin_ga_s, zero))
    c_star = torch.stack((c_s * cos_be_s, c_s * (cos_al_s - cos_be_s * cos_ga_s) / sin_ga_s,
                          c_s * volume / (a * b * c * sin_ga_s)))
    return torch.stack((a_star, b_star, c_star)), volume


def rescale(v: torch.Tensor, length: torch.Tensor) -> torch.Tensor:
    """Vector ``v`` (3,) scaled to ``length``; a zero vector is left alone."""
    sq = dot(v, v)
    n = torch.sqrt(torch.where(sq > 0, sq, torch.ones_like(sq)))
    return v * (length / n)


def real_and_reciprocal(recip: torch.Tensor, misset_rad: torch.Tensor | None,
                        cell: torch.Tensor | None,
                        cell_volume: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
    """Real (Å) and reciprocal (1/Å) cell matrices as nanoBragg derives them.

    Parameters
    ----------
    recip:
        (3, 3) starting reciprocal vectors (from the cell or a MOSFLM matrix).
    misset_rad:
        (3,) rotations about x, y, z applied to the reciprocal vectors, or None.
    cell, cell_volume:
        Given for a user cell: the real-space lengths a, b, c and volume then override the
        magnitudes derived from ``recip``, as the C program does.

    Returns
    -------
    real, reciprocal: (3, 3) matrices, rows a, b, c and a*, b*, c*.
    """
    if misset_rad is not None:
        recip = rotate_xyz(recip, *misset_rad.unbind(-1))
    a_s, b_s, c_s = recip.unbind(0)
    bc, ca, ab = cross(b_s, c_s), cross(c_s, a_s), cross(a_s, b_s)
    v_star = dot(a_s, bc)
    if cell is not None:
        bc, ca, ab = (rescale(bc, cell[0] / cell_volume), rescale(ca, cell[1] / cell_volume),
                      rescale(ab, cell[2] / cell_volume))
        v_star = 1.0 / cell_volume
    v_cell = 1.0 / v_star
    real = torch.stack((bc, ca, ab)) * v_cell
    a, b, c = real.unbind(0)
    reciprocal = torch.stack((cross(b, c), cross(c, a), cross(a, b))) * v_star
    return real, reciprocal


def cell_constants(m: torch.Tensor, dual: torch.Tensor | None = None,
                   volume: float | None = None) -> list[float]:
    """Lengths and angles (degrees) of the rows of a cell matrix (3, 3), for reports.

    Given the dual cell matrix and this cell's volume, the angles are taken as nanoBragg
    prints them: atan2 of sin(alpha) = |a_dual| V / (|b| |c|) and cos(alpha) = b.c / (|b| |c|).
    """
    lengths = [float(norm(v)) for v in m]
    pairs = ((1, 2, 0), (0, 2, 1), (0, 1, 2))
    angles = []
    for i, j, k in pairs:
        cos = float(dot(m[i], m[j])) / (lengths[i] * lengths[j])
        if dual is None:
            angles.append(math.degrees(math.acos(max(-1.0, min(1.0, cos)))))
            continue
        sin = float(norm(dual[k])) * volume / (lengths[i] * lengths[j])
        sin = max(-1.0, min(1.0, sin))
        cos = 1.0 if cos * cos > 1.0 else cos
        angles.append(math.degrees(math.atan2(sin, cos)))
    return [*lengths, *angles]
