"""The crystal: unit cell, orientation, size, spindle rotation and mosaic domains."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from torchbragg.config import CrystalConfig
from torchbragg.geometry import rotate_axis
from torchbragg.lattice import real_and_reciprocal, reciprocal_from_cell
from torchbragg.models._params import buffer, parameter


@dataclass
class Orientations:
    """Lattice vectors for every (phi step, mosaic domain).

    Attributes
    ----------
    lattice_m:
        (R, 3, 3) rows a, b, c in metres, R = phi steps x mosaic domains (mosaic fastest).
    reciprocal_invA:
        (3, 3) unrotated reciprocal vectors a*, b*, c* (1/Å), used by non-square spot shapes.
    n_cells:
        (3,) Na, Nb, Nc.
    """

    lattice_m: torch.Tensor
    reciprocal_invA: torch.Tensor
    n_cells: torch.Tensor


class Crystal(nn.Module):
    """A small crystal as nanoBragg models it.

    Refinable parameters: ``cell`` (a, b, c in Å, angles in radians) when the cell was given,
    ``mosflm_reciprocal_invA`` (3, 3) when a MOSFLM matrix was given, ``length_scale`` (3,)
    (factors on the real-space lengths a, b, c; used when no cell was given), ``misset_rad``
    (3,), ``n_cells`` (3, continuous), ``phi0_rad``, ``phistep_rad`` and
    ``mosaic_spread_rad`` (the domains' rotation axes stay those drawn from the seed and
    their angles scale with the spread). The spindle axis is a buffer.
    """

    def __init__(self, config: CrystalConfig, dtype: torch.dtype = torch.float64):
        super().__init__()
        self.config = config
        self.shape = config.shape
        self.fudge = config.fudge
        self.phisteps = config.phisteps
        self.cell = None if config.cell is None else parameter(config.cell, dtype)
        self.mosflm_reciprocal_invA = (None if config.mosflm_reciprocal_invA is None
                                       else parameter(config.mosflm_reciprocal_invA, dtype))
        # no misset is a misset of zero: rotations by 0 leave the vectors bit for bit
        misset = (0.0, 0.0, 0.0) if config.misset_rad is None else config.misset_rad
        self.misset_rad = parameter(misset, dtype)
        self.length_scale = parameter((1.0, 1.0, 1.0), dtype)
        self.n_cells = parameter(config.n_cells, dtype)
        self.phi0_rad = parameter(config.phi0_rad, dtype)
        self.phistep_rad = parameter(config.phistep_rad, dtype)
        self.mosaic_spread_rad = parameter(config.mosaic_spread_rad, dtype)
        self.register_buffer("spindle", buffer(config.spindle, dtype))
        self.register_buffer("mosaic_umats", buffer(config.mosaic_umats, dtype))
        self.refinable_spread = config.mosaic_axes is not None
        if self.refinable_spread:
            self.register_buffer("mosaic_axes", buffer(config.mosaic_axes, dtype))
            self.register_buffer("mosaic_angles_rad", buffer(config.mosaic_angles_rad, dtype))
            self.register_buffer("spread0_rad", buffer(config.mosaic_spread_rad, dtype))

    def cell_matrices(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Real (Å) and reciprocal (1/Å) cell matrices at phi = 0, rows a, b, c."""
        recip, volume = (None, None) if self.cell is None else reciprocal_from_cell(self.cell)
        if self.mosflm_reciprocal_invA is not None:
            recip = self.mosflm_reciprocal_invA
        real, reciprocal = real_and_reciprocal(recip, self.misset_rad, self.cell, volume)
        if self.cell is None:
            # scaling a, b, c by s scales a*, b*, c* by 1/s (exact at s = 1)
            real = real * self.length_scale[:, None]
            reciprocal = reciprocal / self.length_scale[:, None]
        return real, reciprocal

    def domain_rotations(self) -> torch.Tensor:
        """(domains, 3, 3) mosaic rotations at the current spread.

        At the configured spread (and no gradient asked for) these are the C program's
        matrices; otherwise each domain turns about its seeded axis by an angle proportional
        to the spread.
        """
        spread = self.mosaic_spread_rad
        if not self.refinable_spread or (not spread.requires_grad
                                         and bool(spread == self.spread0_rad)):
            return self.mosaic_umats
        reference = self.config.mosaic_reference_rad
        angles = self.mosaic_angles_rad * (spread / reference)
        return axis_angle_matrices(self.mosaic_axes, angles)

    def phi_angles(self) -> torch.Tensor:
        """(phisteps,) spindle angles (radians); phi = 0 means no rotation at all.

        With ``stale_phi0`` (the released C program, one thread) a step at phi == 0 skips the
        rotation and keeps the cell of the step before it in loop order: the previous phi step,
        or for the first step the last step of the previous (pixel, layer, sub-pixel, source)
        group. (For the image's very first group the C program reads uninitialised memory;
        that one group is not reproduced.)
        """
        steps = torch.arange(self.phisteps, dtype=self.phi0_rad.dtype,
                             device=self.phi0_rad.device)
        phi = self.phi0_rad + self.phistep_rad * steps
        if not self.config.stale_phi0:
            return phi
        return phi[stale_order([float(p) for p in phi])]

    def forward(self) -> Orientations:
        """Lattice vectors for all phi steps and mosaic domains."""
        real, reciprocal = self.cell_matrices()
        real_m = real * 1e-10
        phi = self.phi_angles()
        # (phi, 3 vectors, 3) after the spindle rotation, then each mosaic domain's rotation
        spun = rotate_axis(real_m[None], self.spindle, phi[:, None])
        mos = torch.einsum("mij,pvj->pmvi", self.domain_rotations(), spun)
        return Orientations(lattice_m=mos.reshape(-1, 3, 3), reciprocal_invA=reciprocal,
                            n_cells=self.n_cells)


def stale_order(phi: list[float]) -> list[int]:
    """Which step's angle each phi step uses when steps at exactly 0 reuse the previous one.

    Steps after the first take the (resolved) step before them; the first takes the last
    step, which the previous group ended with. If every step is 0 nothing rotates.
    """
    order = list(range(len(phi)))

    def chain() -> None:
        for i in range(1, len(phi)):
            if phi[i] == 0.0:
                order[i] = order[i - 1]

    chain()
    if phi and phi[0] == 0.0 and phi[order[-1]] != 0.0:
        order[0] = order[-1]
        chain()
    return order


def axis_angle_matrices(axes: torch.Tensor, angles: torch.Tensor) -> torch.Tensor:
    """(n, 3, 3) rotations by ``angles`` (n,) about unit ``axes`` (n, 3), column vectors.

    R = cos I + (1 - cos) v v^T + sin [v]x; a zero axis with a zero angle gives I.
    """
    c, s = torch.cos(angles)[:, None, None], torch.sin(angles)[:, None, None]
    v1, v2, v3 = axes.unbind(-1)
    zero = torch.zeros_like(v1)
    skew = torch.stack((torch.stack((zero, -v3, v2), -1), torch.stack((v3, zero, -v1), -1),
                        torch.stack((-v2, v1, zero), -1)), -2)
    eye = torch.eye(3, dtype=axes.dtype, device=axes.device)
    return c * eye + (1.0 - c) * axes[:, :, None] * axes[:, None, :] + s * skew
