"""Refinable parameters of an experiment, by name, in the units a crystallographer uses.

Each :class:`ParameterSpec` maps a user-facing value (mm, degrees, Å, percent, ...) onto a
parameter of the models (SI units), gives a typical step (what an optimiser should treat as
one unit of change) and default bounds, and says when it does not apply to an experiment (so
that freeing it is an error rather than a silent no-op).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch

DEG = math.pi / 180.0


@dataclass(frozen=True)
class ParameterSpec:
    """One refinable quantity.

    Attributes
    ----------
    name:
        ``part.quantity_unit``, e.g. ``detector.distance_mm``.
    target:
        The model parameter it sets, ``module.attribute`` on the simulator.
    index:
        The slice of the target it fills (None: all of it).
    scale:
        SI value = user value x scale (unless ``to_si`` is given).
    step:
        Typical change in user units; with ``relative`` a fraction of the value instead.
    bounds:
        Default (low, high) in user units.
    doc:
        One line: what it is.
    """

    name: str
    target: str
    doc: str
    scale: float = 1.0
    index: slice | None = None
    step: float = 0.01
    relative: bool = False
    bounds: tuple[float, float] = (-math.inf, math.inf)
    to_si: Callable | None = None
    from_si: Callable | None = None
    applies: Callable | None = None

    def si(self, value: torch.Tensor, sim) -> torch.Tensor:
        """The target's slice in SI units for a user value."""
        return self.to_si(value, sim) if self.to_si else value * self.scale

    def user(self, si: torch.Tensor, sim) -> torch.Tensor:
        """The user value for the target slice ``si``."""
        return self.from_si(si, sim) if self.from_si else si / self.scale

    def typical_step(self, start: torch.Tensor) -> torch.Tensor:
        """Per-element step (user units) for an optimiser working in steps from ``start``."""
        if self.relative:
            size = start.abs()
            return torch.where(size > 0, size * self.step, torch.full_like(size, self.step))
        return torch.full_like(start, self.step)

    def why_not(self, sim) -> str | None:
        """Why this parameter cannot move in this experiment (None: it can)."""
        return self.applies(sim) if self.applies else None


def _pivot(kind: str):
    def check(sim) -> str | None:
        if sim.detector.pivot != kind:
            other = "beam_fs_mm" if kind == "sample" else "close_fs_mm"
            return (f"the detector pivots about the {sim.detector.pivot} spot here; refine "
                    f"detector.{other} instead")
        return None
    return check


def _thick(sim) -> str | None:
    if sim.detector.config.thickness_m == 0.0:
        return "the sensor has no thickness (give detector(thickness_um=...))"
    return None


def _cell_given(sim) -> str | None:
    return None if sim.crystal.cell is not None else (
        "the crystal was oriented by a matrix without cell constants; refine crystal.cell_A "
        "(lengths) and crystal.misset_deg")


def _domains(sim) -> str | None:
    if not sim.crystal.refinable_spread or sim.crystal.domain_count < 2:
        return ("the crystal has one mosaic domain; give crystal(mosaic_domains=...) to refine "
                "the spread")
    return None


def _on_grid(what: str, attr: str):
    def check(sim) -> str | None:
        beam = sim.beam
        if not beam.on_grid:
            return f"the sources come from a file, so the {what} is not a parameter"
        values = torch.as_tensor(getattr(beam.config, attr))
        if not bool((values > 0).any()):
            return f"the beam has no {what} (give beam({what}_...) with more than one step)"
        return None
    return check


def _lengths0(sim) -> torch.Tensor:
    """Real-space cell lengths (Å) at unit length scale, for a matrix-oriented crystal."""
    c = sim.crystal
    with torch.no_grad():
        real, _ = c.cell_matrices()
        return torch.linalg.vector_norm(real, dim=-1) / c.length_scale


def _cell_to_si(value: torch.Tensor, sim) -> torch.Tensor:
    if sim.crystal.cell is not None:
        return value
    return value / _lengths0(sim).to(value)


def _cell_from_si(si: torch.Tensor, sim) -> torch.Tensor:
    if sim.crystal.cell is not None:
        return si
    return si * _lengths0(sim).to(si)


def _cell_target(sim) -> tuple[str, slice | None]:
    return ("crystal.cell", slice(0, 3)) if sim.crystal.cell is not None \
        else ("crystal.length_scale", None)


SPECS = {s.name: s for s in (
    ParameterSpec("detector.distance_mm", "detector.distance_m",
                  "sample to direct-beam spot distance (mm)", 1e-3, step=0.1,
                  bounds=(0.0, math.inf)),
    ParameterSpec("detector.beam_fs_mm", "detector.beam_fs_m",
                  "direct-beam spot, fast and slow mm from the first pixel's outer corner "
                  "(pivot beam)", 1e-3, step=0.01, applies=_pivot("beam")),
    ParameterSpec("detector.close_fs_mm", "detector.close_fs_m",
                  "point of closest approach, fast and slow mm from the first pixel's outer "
                  "corner (pivot sample)", 1e-3, step=0.01, applies=_pivot("sample")),
    ParameterSpec("detector.rotations_deg", "detector.rotations_rad",
                  "detector rotations about x, y, z (degrees)", DEG, step=0.01),
    ParameterSpec("detector.twotheta_deg", "detector.twotheta_rad",
                  "detector two-theta swing (degrees)", DEG, step=0.01),
    ParameterSpec("detector.pixel_size_mm", "detector.pixel_size_m", "pixel edge (mm)", 1e-3,
                  step=1e-3, relative=True, bounds=(0.0, math.inf)),
    ParameterSpec("detector.thickness_um", "detector.thickness_m",
                  "sensor thickness (um); its layers keep their number", 1e-6, step=0.01,
                  relative=True, bounds=(0.0, math.inf), applies=_thick),
    ParameterSpec("detector.attenuation_length_um", "detector.mu_per_m",
                  "sensor attenuation length (um)", step=0.01, relative=True,
                  bounds=(0.0, math.inf), to_si=lambda v, sim: 1e6 / v,
                  from_si=lambda mu, sim: 1e6 / mu, applies=_thick),
    ParameterSpec("crystal.cell_A", "crystal.cell", "unit-cell lengths a, b, c (Å)",
                  step=1e-3, relative=True, bounds=(0.0, math.inf), to_si=_cell_to_si,
                  from_si=_cell_from_si),
    ParameterSpec("crystal.cell_angles_deg", "crystal.cell",
                  "unit-cell angles alpha, beta, gamma (degrees)", DEG, index=slice(3, 6),
                  step=0.01, bounds=(0.0, 180.0), applies=_cell_given),
    ParameterSpec("crystal.misset_deg", "crystal.misset_rad",
                  "crystal rotations about x, y, z applied to the starting orientation "
                  "(degrees)", DEG, step=0.01),
    ParameterSpec("crystal.n_cells", "crystal.n_cells",
                  "unit cells along a, b, c (continuous)", step=0.01, relative=True,
                  bounds=(1.0, math.inf)),
    ParameterSpec("crystal.mosaic_spread_deg", "crystal.mosaic_spread_rad",
                  "mosaic spread (degrees); the domains' axes stay those of the seed", DEG,
                  step=0.005, bounds=(0.0, math.inf), applies=_domains),
    ParameterSpec("crystal.phi0_deg", "crystal.phi0_rad", "starting spindle angle (degrees)",
                  DEG, step=0.01),
    ParameterSpec("beam.wavelength_A", "beam.wavelength_m",
                  "nominal wavelength (Å); every source's scales with it", 1e-10, step=1e-4,
                  relative=True, bounds=(0.0, math.inf)),
    ParameterSpec("beam.dispersion_percent", "beam.dispersion",
                  "full spectral width (percent of the wavelength)", 1e-2, step=0.01,
                  bounds=(0.0, math.inf), applies=_on_grid("dispersion", "dispersion")),
    ParameterSpec("beam.divergence_mrad", "beam.divergence_rad",
                  "full horizontal and vertical divergence (mrad)", 1e-3, step=0.01,
                  bounds=(0.0, math.inf), applies=_on_grid("divergence", "divergence_rad")),
    ParameterSpec("beam.polarization", "beam.polarization",
                  "Kahn polarization factor", step=0.01, bounds=(-1.0, 1.0)),
    ParameterSpec("beam.fluence_per_m2", "beam.fluence_per_m2",
                  "photons per m^2 on the sample", step=0.01, relative=True,
                  bounds=(0.0, math.inf)),
    ParameterSpec("structure_factors.F", "structure_factors.grid",
                  "amplitudes on the (h, k, l) grid", step=0.01, relative=True,
                  bounds=(0.0, math.inf),
                  applies=lambda sim: None if sim.structure_factors.has_grid else
                  "there is no structure-factor grid (only default_F)"),
    ParameterSpec("structure_factors.default_F", "structure_factors.default_F",
                  "amplitude of reflections not on the grid", step=0.01, relative=True,
                  bounds=(0.0, math.inf)),
)}


def target_of(spec: ParameterSpec, sim) -> tuple[str, slice | None]:
    """The model parameter (``module.attribute``) and slice a spec fills in ``sim``."""
    if spec.name == "crystal.cell_A":
        return _cell_target(sim)
    return spec.target, spec.index


def lookup(name: str) -> ParameterSpec:
    """The spec called ``name``; a KeyError naming the known ones otherwise."""
    try:
        return SPECS[name]
    except KeyError:
        raise KeyError(f"unknown parameter {name!r}; known: {', '.join(SPECS)}") from None
