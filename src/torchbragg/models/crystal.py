"""The crystal: unit cell, orientation, size, spindle rotation and mosaic domains."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from torchbragg.config import CrystalConfig, zero_phi_step
from torchbragg.geometry import rotate_axis
from torchbragg.lattice import real_and_reciprocal, reciprocal_from_cell
from torchbragg.models._params import buffer, parameter

# More orientations (phi steps x mosaic domains) than this are computed a run at a time,
# never held all at once (see LatticeRuns).
LAZY_ORIENTATIONS = 1 << 16


class LatticeRuns:
    """Lattice vectors of many orientations, computed when a run of them is asked for.

    Stands in for the (R, 3, 3) tensor of :class:`Orientations` where R is too large to
    hold: ``runs[a:b]`` is the (b - a, 3, 3) tensor of orientations a .. b-1 (phi step
    ``r // domains``, mosaic domain ``r % domains``), ``len(runs)`` and ``runs.shape`` as
    the tensor's.
    """

    def __init__(self, crystal: Crystal, real_m: torch.Tensor, count: int):
        self.crystal, self.real_m, self.count = crystal, real_m, count
        self.shape = (count, 3, 3)
        self.dtype, self.device = real_m.dtype, real_m.device

    def __len__(self) -> int:
        return self.count

    def __getitem__(self, index: slice) -> torch.Tensor:
        if not isinstance(index, slice):
            raise TypeError("orientations computed in runs are indexed by slices")
        start, stop, step = index.indices(self.count)
        if step != 1:
            raise ValueError("orientations computed in runs are indexed by contiguous slices")
        return self.crystal.lattice_run(self.real_m, start, max(start, stop))


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

    lattice_m: torch.Tensor | LatticeRuns
    reciprocal_invA: torch.Tensor
    n_cells: torch.Tensor

    @property
    def lazy(self) -> bool:
        """Whether the lattice vectors are computed a run at a time."""
        return isinstance(self.lattice_m, LatticeRuns)


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
        self.mosaic_stream = config.mosaic_stream  # None: the domains are in the buffers
        self.domain_count = config.domains
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

    def orientation_count(self) -> int:
        """R = phi steps x mosaic domains."""
        return self.phisteps * self.domain_count

    def domain_rotations_of(self, domains: torch.Tensor) -> torch.Tensor:
        """(n, 3, 3) rotations of mosaic domains ``domains`` (int tensor of ascending runs)."""
        if self.mosaic_stream is None:
            return self.domain_rotations()[domains]
        if domains.numel() == 0:
            return self.spindle.new_zeros((0, 3, 3))
        index = domains.tolist()
        breaks = [0] + [i for i in range(1, len(index)) if index[i] != index[i - 1] + 1]
        runs = zip(breaks, [*breaks[1:], len(index)], strict=True)
        return torch.cat([self._drawn_rotations(index[a], index[b - 1] + 1) for a, b in runs])

    def _drawn_rotations(self, start: int, stop: int) -> torch.Tensor:
        """(stop - start, 3, 3) rotations of domains drawn from the mosaic stream."""
        axes, angles = self.mosaic_stream.draws(start, stop)
        like = dict(dtype=self.spindle.dtype, device=self.spindle.device)
        # drawn at the configured spread (1 radian at zero spread): angles scale with it
        scale = self.mosaic_spread_rad / self.mosaic_stream.spread_rad
        return axis_angle_matrices(torch.as_tensor(axes, **like),
                                   torch.as_tensor(angles, **like) * scale)

    def phi_at(self, steps: torch.Tensor) -> torch.Tensor:
        """Spindle angles (radians) of phi steps ``steps`` (int tensor), as phi_angles gives.

        Under ``stale_phi0`` only a step exactly at 0 differs; with a non-zero step size
        there is at most one, found without listing every step.
        """
        phi = self.phi0_rad + self.phistep_rad * steps.to(self.phi0_rad.dtype)
        if not self.config.stale_phi0:
            return phi
        zero = self._zero_step()
        if zero is None:
            return phi
        used = self.phi_angles_of([zero - 1 if zero > 0 else self.phisteps - 1])[0]
        return torch.where(steps == zero, used, phi)

    def _zero_step(self) -> int | None:
        """The one phi step exactly at 0 that reuses another's cell, or None."""
        if float(self.phistep_rad) == 0.0 or self.phisteps < 2:
            return None  # all steps equal: at 0 nothing rotates, else none is at 0
        return zero_phi_step(float(self.phi0_rad), float(self.phistep_rad), self.phisteps)

    def phi_angles_of(self, steps: list[int]) -> torch.Tensor:
        """Nominal angles of a few phi steps."""
        index = torch.tensor(steps, dtype=self.phi0_rad.dtype, device=self.phi0_rad.device)
        return self.phi0_rad + self.phistep_rad * index

    def lattice_run(self, real_m: torch.Tensor, start: int, stop: int) -> torch.Tensor:
        """(stop - start, 3, 3) lattice vectors of orientations start .. stop-1."""
        r = torch.arange(start, stop, device=real_m.device)
        domains = self.domain_count
        spun = rotate_axis(real_m[None], self.spindle, self.phi_at(r // domains)[:, None])
        return torch.einsum("nij,nvj->nvi", self.domain_rotations_of(r % domains), spun)

    def forward(self) -> Orientations:
        """Lattice vectors for all phi steps and mosaic domains (in runs when too many)."""
        real, reciprocal = self.cell_matrices()
        real_m = real * 1e-10
        count = self.orientation_count()
        if count > LAZY_ORIENTATIONS:
            return Orientations(lattice_m=LatticeRuns(self, real_m, count),
                                reciprocal_invA=reciprocal, n_cells=self.n_cells)
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
