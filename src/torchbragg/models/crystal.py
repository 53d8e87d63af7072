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
    ``mosflm_reciprocal_invA`` (3, 3) when a MOSFLM matrix was given, ``misset_rad`` (3,),
    ``n_cells`` (3, continuous), ``phi0_rad`` and ``phistep_rad``. Mosaic domain rotations
    and the spindle axis are buffers.
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
        self.misset_rad = None if config.misset_rad is None else parameter(config.misset_rad,
                                                                           dtype)
        self.n_cells = parameter(config.n_cells, dtype)
        self.phi0_rad = parameter(config.phi0_rad, dtype)
        self.phistep_rad = parameter(config.phistep_rad, dtype)
        self.register_buffer("spindle", buffer(config.spindle, dtype))
        self.register_buffer("mosaic_umats", buffer(config.mosaic_umats, dtype))

    def cell_matrices(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Real (Å) and reciprocal (1/Å) cell matrices at phi = 0, rows a, b, c."""
        recip, volume = (None, None) if self.cell is None else reciprocal_from_cell(self.cell)
        if self.mosflm_reciprocal_invA is not None:
            recip = self.mosflm_reciprocal_invA
        return real_and_reciprocal(recip, self.misset_rad, self.cell, volume)

    def phi_angles(self) -> torch.Tensor:
        """(phisteps,) spindle angles (radians); phi = 0 means no rotation at all."""
        steps = torch.arange(self.phisteps, dtype=self.phi0_rad.dtype,
                             device=self.phi0_rad.device)
        return self.phi0_rad + self.phistep_rad * steps

    def forward(self) -> Orientations:
        """Lattice vectors for all phi steps and mosaic domains."""
        real, reciprocal = self.cell_matrices()
        real_m = real * 1e-10
        phi = self.phi_angles()
        # (phi, 3 vectors, 3) after the spindle rotation, then each mosaic domain's rotation
        spun = rotate_axis(real_m[None], self.spindle, phi[:, None])
        mos = torch.einsum("mij,pvj->pmvi", self.mosaic_umats, spun)
        return Orientations(lattice_m=mos.reshape(-1, 3, 3), reciprocal_invA=reciprocal,
                            n_cells=self.n_cells)
