"""The incident beam: sources, wavelengths, polarization and fluence."""

from __future__ import annotations

import torch
from torch import nn

from torchbragg.config import BeamConfig
from torchbragg.models._params import buffer, parameter


class Beam(nn.Module):
    """X-ray sources as nanoBragg samples them.

    Refinable parameters: ``wavelengths_m`` (n_sources,), ``polarization`` (Kahn factor) and
    ``fluence_per_m2``. ``source_directions`` (n_sources, 3) are unit vectors from the sample
    towards each source; ``direction`` (3,) is the nominal beam direction.
    """

    def __init__(self, config: BeamConfig, dtype: torch.dtype = torch.float64):
        super().__init__()
        self.config = config
        self.nopolar = config.nopolar
        self.wavelengths_m = parameter(config.source_wavelengths_m, dtype)
        self.polarization = parameter(config.polarization, dtype)
        self.fluence_per_m2 = parameter(config.fluence_per_m2, dtype)
        self.register_buffer("source_directions", buffer(config.source_directions, dtype))
        self.register_buffer("direction", buffer(config.beam, dtype))
        self.register_buffer("polar_vector", buffer(config.polar_vector, dtype))

    def incident(self) -> torch.Tensor:
        """(n_sources, 3) unit vectors along which the x-rays travel."""
        return -self.source_directions
