"""Structure factors on an integer Miller-index grid: nearest-index and tricubic lookup."""

from __future__ import annotations

import torch
from torch import nn

from torchbragg.config import StructureFactorConfig
from torchbragg.models._params import buffer, parameter


class StructureFactors(nn.Module):
    """Amplitudes F(h, k, l) with nanoBragg's lookup rules.

    ``grid`` (nh, nk, nl) and ``default_F`` are refinable; indices outside the grid, or every
    index when no grid was read, give ``default_F``.
    """

    def __init__(self, config: StructureFactorConfig, dtype: torch.dtype = torch.float64):
        super().__init__()
        self.config = config
        self.default_F = parameter(config.default_F, dtype)
        self.interpolate = bool(config.interpolate) and config.grid is not None
        grid = config.grid if config.grid is not None else [[[0.0]]]
        self.grid = parameter(grid, dtype)
        self.has_grid = config.grid is not None
        self.register_buffer("hkl_min", buffer(config.hkl_min, torch.long))

    def _sizes(self) -> torch.Tensor:
        return torch.tensor(self.grid.shape, device=self.grid.device)

    def _gather(self, index: torch.Tensor) -> torch.Tensor:
        """Grid values at integer offsets ``index`` (..., 3), which must lie inside the grid."""
        nh, nk, nl = self.grid.shape
        flat = (index[..., 0] * nk + index[..., 1]) * nl + index[..., 2]
        return self.grid.reshape(-1)[flat.reshape(-1)].reshape(flat.shape)

    def padded(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The grid with one plane of ``default_F`` on every side, and its index origin (3,).

        Clamping an index into the padded grid sends every point off the grid to the
        default value, which is how :func:`lookup_nearest` treats the edge. Without a grid,
        a single default-valued cell serves every index. Kept between calls while the grid
        and default_F are unchanged and no gradient is recorded (many panels, many shots).
        """
        return self._cached("padded", self._pad)

    def padded_flat(self, dtype: torch.dtype) -> torch.Tensor:
        """:meth:`padded`'s grid flattened (n,) in ``dtype``, kept as :meth:`padded` is."""
        return self._cached(("flat", dtype), lambda: self.padded()[0].reshape(-1).to(dtype))

    def _cached(self, name, make):
        """``make()``, remembered under ``name`` while the tensors it reads are unchanged.

        The key holds each tensor's identity, in-place version counter, device and dtype, so
        ``experiment.set`` (an in-place copy), ``functional_call`` (other tensors) and
        ``.to`` all make it anew; the tensors are held with the value, so that their
        identities cannot pass to new tensors. With gradients being recorded nothing is kept.
        Changes torch does not count are not seen: writing through ``.data`` or through a
        numpy view of the grid (use ``experiment.set`` or in-place torch operations).
        """
        g, d = self.grid, self.default_F
        if torch.is_grad_enabled() and (g.requires_grad or d.requires_grad):
            return make()
        key = tuple((id(t), t._version, t.data_ptr(), t.device, t.dtype) for t in (g, d))
        cache = self.__dict__.setdefault("_kept", {})
        if name not in cache or cache[name][0] != key:
            cache[name] = (key, (g, d), make())
        return cache[name][2]

    def _pad(self) -> tuple[torch.Tensor, torch.Tensor]:
        if not self.has_grid:
            grid = self.default_F.reshape(1, 1, 1)
            return grid, torch.zeros(3, dtype=self.grid.dtype, device=self.grid.device)
        pad = (1, 1, 1, 1, 1, 1)
        inside = torch.nn.functional.pad(torch.ones_like(self.grid), pad, value=0.0)
        # grid + 0 inside, 0 + default_F x 1 on the border: both exact
        padded = (torch.nn.functional.pad(self.grid, pad, value=0.0)
                  + self.default_F * (1.0 - inside))
        return padded, (self.hkl_min - 1).to(self.grid.dtype)

    def nearest(self, hkl0: torch.Tensor) -> torch.Tensor:
        """F at whole indices ``hkl0`` (..., 3) (float tensor of integers); default outside."""
        return lookup_nearest(*self.padded(), hkl0)

    def interpolation_out_of_range(self, hkl: torch.Tensor) -> torch.Tensor:
        """(...) True where the 4x4x4 neighbourhood of fractional ``hkl`` leaves the grid.

        This is nanoBragg's test: h - h_min + 3 > n_h or h - 2 < h_min, on each axis.
        """
        lo = self.hkl_min.to(hkl.dtype)
        sizes = self._sizes().to(hkl.dtype)
        return ((hkl - lo + 3 > sizes) | (hkl - 2 < lo)).any(-1)

    def tricubic(self, hkl: torch.Tensor) -> torch.Tensor:
        """Tricubic (4-point Lagrange per axis) interpolation of F at fractional ``hkl``.

        ``hkl`` (..., 3) must pass :meth:`interpolation_out_of_range`; use ``where`` to mask
        points that do not (they are clamped here to stay addressable).
        """
        base = torch.floor(hkl)
        nodes = base[..., None] + torch.arange(-1, 3, dtype=hkl.dtype, device=hkl.device)
        weights = lagrange_weights(nodes, hkl)  # (..., 3, 4)
        offset = nodes.long() - self.hkl_min[:, None]
        offset = torch.minimum(offset.clamp(min=0), (self._sizes() - 1)[:, None])
        idx = torch.stack(torch.broadcast_tensors(offset[..., 0, :, None, None],
                                                  offset[..., 1, None, :, None],
                                                  offset[..., 2, None, None, :]), -1)
        values = self._gather(idx)  # (..., 4, 4, 4)
        return torch.einsum("...ijk,...i,...j,...k->...", values, weights[..., 0, :],
                            weights[..., 1, :], weights[..., 2, :])


def lookup_nearest(padded: torch.Tensor, origin: torch.Tensor,
                   hkl0: torch.Tensor) -> torch.Tensor:
    """Values of a padded grid (see :meth:`StructureFactors.padded`) at whole ``hkl0`` (..., 3)."""
    hi = torch.tensor(padded.shape, dtype=hkl0.dtype, device=hkl0.device) - 1
    offset = torch.minimum(torch.clamp(hkl0 - origin, min=0), hi).long()
    flat = (offset[..., 0] * padded.shape[1] + offset[..., 1]) * padded.shape[2] + offset[..., 2]
    return padded.reshape(-1)[flat.reshape(-1)].reshape(flat.shape)


def lagrange_weights(nodes: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Weights of the cubic through four ``nodes`` (..., 3, 4) evaluated at ``x`` (..., 3)."""
    x = x[..., None]
    w = []
    for i in range(4):
        num = torch.ones_like(nodes[..., 0])
        den = torch.ones_like(nodes[..., 0])
        for j in range(4):
            if j != i:
                num = num * (x[..., 0] - nodes[..., j])
                den = den * (nodes[..., i] - nodes[..., j])
        w.append(num / den)
    return torch.stack(w, -1)
