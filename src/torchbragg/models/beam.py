"""The incident beam: sources, wavelengths, polarization and fluence."""

from __future__ import annotations

import torch
from torch import nn

from torchbragg.config import BeamConfig
from torchbragg.geometry import rotate_axis, unitize
from torchbragg.models._params import buffer, parameter


class Beam(nn.Module):
    """X-ray sources as nanoBragg samples them.

    Refinable parameters: ``wavelengths_m`` (n_sources,), ``wavelength_m`` (the nominal
    wavelength; the sources' wavelengths scale with it), ``dispersion`` (fractional spread of
    the wavelengths), ``divergence_rad`` (2,: horizontal and vertical ranges; the sources'
    angles scale with them), ``polarization`` (Kahn factor) and ``fluence_per_m2``.
    Dispersion and divergence are refinable only for sources on nanoBragg's grid (not from a
    source file), and only where the grid has more than one step. ``source_directions``
    (n_sources, 3) are the configured unit vectors from the sample towards each source;
    ``direction`` (3,) is the nominal beam direction.
    """

    def __init__(self, config: BeamConfig, dtype: torch.dtype = torch.float64):
        super().__init__()
        self.config = config
        self.nopolar = config.nopolar
        self.wavelengths_m = parameter(config.source_wavelengths_m, dtype)
        self.wavelength_m = parameter(config.wavelength_m, dtype)
        self.dispersion = parameter(config.dispersion, dtype)
        self.divergence_rad = parameter(config.divergence_rad, dtype)
        self.polarization = parameter(config.polarization, dtype)
        self.fluence_per_m2 = parameter(config.fluence_per_m2, dtype)
        self.register_buffer("source_directions", buffer(config.source_directions, dtype))
        self.register_buffer("direction", buffer(config.beam, dtype))
        self.register_buffer("polar_vector", buffer(config.polar_vector, dtype))
        self.on_grid = config.divergence_offsets_rad is not None
        if self.on_grid:
            self.register_buffer("divergence_offsets_rad",
                                 buffer(config.divergence_offsets_rad, dtype))
        # too many sources to hold: made from the grid when asked for (sources_at)
        self.source_grid = config.source_grid
        self.source_count = config.sources
        if self.source_grid is not None:
            points = torch.as_tensor(self.source_grid.positions_m, dtype=dtype)
            self.register_buffer("grid_directions",
                                 points / torch.linalg.norm(points, dim=-1, keepdim=True))

    def source_wavelengths(self) -> torch.Tensor:
        """(n_sources,) wavelengths (m) at the current nominal wavelength and dispersion.

        lambda_i = lambda_i0 (lambda / lambda_0) + lambda u_i (D / D_0 - 1), with u_i the
        source's fractional offset lambda_i0 / lambda_0 - 1 at the configured dispersion D_0:
        the configured wavelengths exactly at the configured values, and lambda (1 + u_i D/D_0)
        in general.
        """
        return self._scaled_wavelengths(self.wavelengths_m)

    def _scaled_wavelengths(self, configured: torch.Tensor) -> torch.Tensor:
        """Configured source wavelengths (m) at the current wavelength and dispersion."""
        ratio = self.wavelength_m / self.config.wavelength_m
        waves = configured * ratio
        d0 = self.config.dispersion
        if not self.on_grid or d0 == 0.0:
            return waves
        offsets = configured / self.config.wavelength_m - 1.0
        return waves + self.wavelength_m * offsets * (self.dispersion / d0 - 1.0)

    def source_unit_vectors(self) -> torch.Tensor:
        """(n_sources, 3) unit vectors towards each source at the current divergence.

        At the configured divergence (and no gradient asked for) these are the configured
        directions; otherwise every source's angles scale with the ranges: the source is
        swung by its vertical angle about the E vector, then by its horizontal angle about
        beam x E, as nanoBragg places them.
        """
        if self._as_configured():
            return self.source_directions
        return self._swung(self.divergence_offsets_rad)

    def _as_configured(self) -> bool:
        """Whether the sources sit where they were configured (divergence not changed)."""
        div = self.divergence_rad
        return not self.on_grid or (not div.requires_grad and bool(
            (div == div.new_tensor(self.config.divergence_rad)).all()))

    def _swung(self, offsets_rad: torch.Tensor) -> torch.Tensor:
        """(n, 3) unit vectors towards sources at configured angles (n, 2), rescaled.

        The angles scale with the current divergence ranges.
        """
        div = self.divergence_rad
        ranges0 = div.new_tensor(self.config.divergence_rad)
        ratio = torch.where(ranges0 > 0, div / torch.where(ranges0 > 0, ranges0, 1.0), 1.0)
        angles = offsets_rad * ratio  # (n, 2) horizontal, vertical
        vertical_axis = unitize(torch.linalg.cross(self.direction, self.polar_vector))
        start = -self.direction.expand(len(angles), 3)
        swung = rotate_axis(start, self.polar_vector, angles[:, 1])
        return rotate_axis(swung, vertical_axis, angles[:, 0])

    def incident(self) -> torch.Tensor:
        """(n_sources, 3) unit vectors along which the x-rays travel."""
        return -self.source_unit_vectors()

    def sources_at(self, index: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Incident unit vectors (n, 3) and wavelengths (n,) of sources ``index`` (n,)."""
        if self.source_grid is None:
            return self.incident()[index], self.source_wavelengths()[index]
        point, wave = self.source_grid.split(index.cpu().numpy())
        configured = torch.as_tensor(self.source_grid.wavelengths(index.cpu().numpy()),
                                     dtype=self.wavelength_m.dtype, device=index.device)
        point = torch.as_tensor(point, device=index.device)
        directions = (self.grid_directions[point] if self._as_configured()
                      else self._swung(self.divergence_offsets_rad[point]))
        return -directions, self._scaled_wavelengths(configured)


class SourceRuns:
    """Stands in for a beam's (S, 3) incident or (S,) wavelength tensor, made when needed.

    For beams with too many sources to hold: indexed by index tensors, with ``shape`` and
    ``len`` as the tensor's.
    """

    def __init__(self, beam: Beam, part: int):
        self.beam, self.part = beam, part  # part 0: incident vectors, 1: wavelengths
        count = beam.source_count
        self.shape = (count, 3) if part == 0 else (count,)

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, index: torch.Tensor) -> torch.Tensor:
        return self.beam.sources_at(index)[self.part]

    def all(self) -> torch.Tensor:
        """Every row at once (for a trace: memory in proportion to the sources)."""
        every = torch.arange(len(self), device=self.beam.direction.device)
        return self[every]
