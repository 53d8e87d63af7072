"""Rotations and the detector frame, as nanoBragg computes them (pure tensor functions).

Vectors are tensors whose last dimension has length 3 (x, y, z in the lab frame; the MOSFLM
lab frame has the beam along +x). Lengths are metres and angles radians. Every function is
differentiable in all its tensor arguments.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

DBL_MIN = 2.2250738585072014e-308


def dot(u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Dot product over the last dimension: (..., 3) x (..., 3) -> (...)."""
    return (u * v).sum(-1)


def cross(u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Cross product over the last dimension: (..., 3) x (..., 3) -> (..., 3)."""
    u, v = torch.broadcast_tensors(u, v)
    return torch.linalg.cross(u, v, dim=-1)


def norm(v: torch.Tensor) -> torch.Tensor:
    """Euclidean length over the last dimension: (..., 3) -> (...)."""
    return torch.sqrt(dot(v, v))


def unitize(v: torch.Tensor) -> torch.Tensor:
    """Unit vector along ``v`` (..., 3); the zero vector stays zero, as in nanoBragg.

    The square root only sees positive arguments, so gradients stay finite at zero.
    """
    sq = dot(v, v).unsqueeze(-1)
    ok = sq > 0
    n = torch.sqrt(torch.where(ok, sq, torch.ones_like(sq)))
    return torch.where(ok, v / n, v * 0)


def rotate_xyz(v: torch.Tensor, rx: torch.Tensor, ry: torch.Tensor,
               rz: torch.Tensor) -> torch.Tensor:
    """Rotate ``v`` (..., 3) about x by ``rx``, then y by ``ry``, then z by ``rz`` (radians)."""
    x, y, z = v.unbind(-1)
    cx, sx = torch.cos(rx), torch.sin(rx)
    y, z = y * cx - z * sx, y * sx + z * cx
    cy, sy = torch.cos(ry), torch.sin(ry)
    x, z = x * cy + z * sy, -x * sy + z * cy
    cz, sz = torch.cos(rz), torch.sin(rz)
    x, y = x * cz - y * sz, x * sz + y * cz
    return torch.stack((x, y, z), -1)


def rotate_axis(v: torch.Tensor, axis: torch.Tensor, phi: torch.Tensor) -> torch.Tensor:
    """Rotate ``v`` (..., 3) right-handedly by ``phi`` (radians) about unit ``axis`` (..., 3).

    Rodrigues' formula: v cos(phi) + (axis x v) sin(phi) + axis (axis . v)(1 - cos(phi)).
    """
    phi = torch.as_tensor(phi, dtype=v.dtype, device=v.device).unsqueeze(-1)
    c, s = torch.cos(phi), torch.sin(phi)
    along = dot(axis, v).unsqueeze(-1) * (1.0 - c)
    return axis * along + v * c + cross(axis, v) * s


@dataclass
class DetectorFrame:
    """The detector after pivoting and rotation (all tensors, metres).

    Attributes
    ----------
    fdet, sdet, odet:
        Fast, slow and normal unit vectors, shape (3,).
    pix0:
        Vector from the sample to the corner of the first pixel, shape (3,).
    close_f, close_s:
        Point of closest approach in detector coordinates (C's Fclose, Sclose).
    close_distance:
        Sample to detector-plane distance.
    beam_f, beam_s:
        Direct-beam spot in detector coordinates (C's Fbeam, Sbeam).
    distance:
        Sample to direct-beam spot distance along the beam.
    """

    fdet: torch.Tensor
    sdet: torch.Tensor
    odet: torch.Tensor
    pix0: torch.Tensor
    close_f: torch.Tensor
    close_s: torch.Tensor
    close_distance: torch.Tensor
    beam_f: torch.Tensor
    beam_s: torch.Tensor
    distance: torch.Tensor


def detector_frame(axes: dict[str, torch.Tensor], rotations: torch.Tensor,
                   twotheta: torch.Tensor, pivot: str, beam_fs: torch.Tensor,
                   close_fs: torch.Tensor, distance: torch.Tensor,
                   close_distance: torch.Tensor | None) -> DetectorFrame:
    """Place and orient the detector as nanoBragg does.

    Parameters
    ----------
    axes:
        Unrotated unit vectors ``fdet``, ``sdet``, ``odet``, ``beam``, ``twotheta_axis`` (3,).
    rotations:
        Detector rotations about x, y, z (radians), shape (3,), applied in that order.
    twotheta:
        Swing about ``twotheta_axis`` (radians), applied after the rotations.
    pivot:
        ``"beam"``: the direct-beam spot ``beam_fs`` stays put; ``"sample"``: the point of
        closest approach ``close_fs`` does.
    beam_fs, close_fs:
        (F, S) positions in metres, shape (2,).
    distance:
        Distance to the beam spot (metres).
    close_distance:
        Distance to the detector plane (metres), or None to derive it from ``distance``.
    """
    f, s, o = axes["fdet"], axes["sdet"], axes["odet"]
    beam, tt_axis = axes["beam"], axes["twotheta_axis"]
    rx, ry, rz = rotations.unbind(-1)
    # the beam/normal cosine uses the normal before the two-theta swing, as the C code does
    ratio = dot(beam, rotate_xyz(o, rx, ry, rz))
    ratio = torch.where(ratio == 0, torch.full_like(ratio, DBL_MIN), ratio)
    if close_distance is None:
        close_distance = torch.abs(ratio * distance)
    distance = close_distance / ratio

    def orient(v: torch.Tensor) -> torch.Tensor:
        return rotate_axis(rotate_xyz(v, rx, ry, rz), tt_axis, twotheta)

    if pivot == "sample":
        pix0 = orient(-close_fs[0] * f - close_fs[1] * s + close_distance * o)
    f, s, o = orient(f), orient(s), orient(o)
    if pivot == "beam":
        pix0 = -beam_fs[0] * f - beam_fs[1] * s + distance * beam
    close_f, close_s = -dot(pix0, f), -dot(pix0, s)
    close_distance = dot(pix0, o)
    to_spot = close_distance / ratio * beam - pix0
    return DetectorFrame(fdet=f, sdet=s, odet=o, pix0=pix0, close_f=close_f, close_s=close_s,
                         close_distance=close_distance, beam_f=dot(f, to_spot),
                         beam_s=dot(s, to_spot), distance=close_distance / ratio)
