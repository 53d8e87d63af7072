"""Frozen descriptions of one simulation, with units in field names.

These are what the models are built from. They hold values after nanoBragg's precedence rules
have been applied (see :mod:`torchbragg.precedence`); ``None`` means "not given" where a
choice remains open. Arrays are numpy float64 and are never mutated.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

# Thomson cross section of the electron (m^2) and Avogadro's number, as nanoBragg uses them.
R_E_SQR_M2 = 7.94079248018965e-30
AVOGADRO = 6.02214179e23
WATER_F = 2.57
WATER_MW = 18.0


# How pixels are computed (see torchbragg.simulator.Simulator).
KERNELS = ("auto", "fused", "reference")


@dataclass(frozen=True, eq=False)
class DetectorConfig:
    """Detector geometry before pivoting and rotation.

    Vectors are unit, lab frame. ``beam_f_m``/``beam_s_m`` are the direct-beam spot and
    ``close_f_m``/``close_s_m`` the point of closest approach, in metres along the fast and
    slow axes from the corner of the first pixel (C's Fbeam, Sbeam, Fclose, Sclose).
    """

    convention: str
    pivot: str
    fdet: tuple
    sdet: tuple
    odet: tuple
    twotheta_axis: tuple
    pixel_size_m: float
    fpixels: int
    spixels: int
    distance_m: float
    close_distance_m: float | None
    beam_f_m: float
    beam_s_m: float
    close_f_m: float
    close_s_m: float
    rotations_rad: tuple = (0.0, 0.0, 0.0)
    twotheta_rad: float = 0.0
    curved: bool = False
    point_pixel: bool = False
    thickness_m: float = 0.0
    thicksteps: int = 1
    thickstep_m: float = 0.0
    mu_per_m: float = -1.0
    roi: tuple = (0, 0, 0, 0)
    xbeam_m: float = 0.0
    ybeam_m: float = 0.0
    xclose_m: float = 0.0
    yclose_m: float = 0.0

    @property
    def detsize_f_m(self) -> float:
        """Fast size of the detector (metres)."""
        return self.pixel_size_m * self.fpixels

    @property
    def detsize_s_m(self) -> float:
        """Slow size of the detector (metres)."""
        return self.pixel_size_m * self.spixels


@dataclass(frozen=True, eq=False)
class BeamConfig:
    """Incident beam: sources, polarization and fluence.

    ``source_directions`` (n, 3) are unit vectors from the sample towards each source, so the
    incident direction is their negative. Weights are read but, as in nanoBragg, not applied.
    """

    wavelength_m: float
    beam: tuple
    polar_vector: tuple
    source_directions: np.ndarray
    source_wavelengths_m: np.ndarray
    source_weights: np.ndarray
    polarization: float = 0.0
    nopolar: bool = False
    fluence_per_m2: float = 125932015286227086360700780544.0
    flux_per_s: float = 0.0
    exposure_s: float = 1.0
    beamsize_m: float = 1e-4
    # the grid the sources came from (None for a source file): each source's (horizontal,
    # vertical) divergence angle (n, 2) within the full ranges ``divergence_rad`` (h, v), and
    # the fractional spread of wavelengths ``dispersion``; they make these refinable
    divergence_offsets_rad: np.ndarray | None = None
    divergence_rad: tuple = (0.0, 0.0)
    dispersion: float = 0.0
    # too many sources to hold: a sources.SourceGrid gives them when needed (the per-source
    # arrays above are then empty and divergence_offsets_rad holds the grid's points)
    source_grid: object | None = None

    @property
    def sources(self) -> int:
        """Number of sources."""
        return self.source_grid.count if self.source_grid is not None \
            else len(self.source_wavelengths_m)


def zero_phi_step(phi0_rad: float, phistep_rad: float, phisteps: int) -> int | None:
    """The first phi step exactly at phi = 0 (as phi0 + i step computes it), or None.

    Found without listing the steps: with a non-zero step at most one is at 0.
    """
    if phistep_rad == 0.0:
        return 0 if phi0_rad == 0.0 and phisteps > 0 else None
    ratio = -phi0_rad / phistep_rad
    if not -1.0 <= ratio <= phisteps:  # also inf and NaN
        return None
    i = round(ratio)
    return i if 0 <= i < phisteps and phi0_rad + phistep_rad * float(i) == 0.0 else None


@dataclass(frozen=True, eq=False)
class CrystalConfig:
    """Unit cell, orientation, size, spot shape, spindle and mosaic domains.

    Exactly one of ``cell`` (a, b, c in Å; alpha, beta, gamma in radians) and
    ``mosflm_reciprocal_invA`` (rows a*, b*, c* in 1/Å, wavelength removed) starts the
    orientation; when both are given the matrix orients and the cell sets the lengths.
    """

    cell: tuple | None
    mosflm_reciprocal_invA: np.ndarray | None
    misset_rad: tuple | None
    n_cells: tuple
    shape: str = "square"
    fudge: float = 1.0
    spindle: tuple = (0.0, 0.0, 1.0)
    phi0_rad: float = 0.0
    phistep_rad: float = 0.0
    phisteps: int = 1
    osc_rad: float = 0.0
    mosaic_spread_rad: float = 0.0
    mosaic_umats: np.ndarray = field(default_factory=lambda: np.eye(3)[None])
    # each domain's rotation axis (n, 3) and angle (n,) at ``mosaic_reference_rad`` of spread;
    # with them the spread is refinable (None: the rotations are fixed)
    mosaic_axes: np.ndarray | None = None
    mosaic_angles_rad: np.ndarray | None = None
    mosaic_reference_rad: float = 0.0
    # reproduce the released C program: a step at phi == 0 skips the rotation and reuses the
    # previous step's rotated cell (see Crystal.phi_angles)
    stale_phi0: bool = False
    # too many domains to hold: they are drawn when needed (a mosaic_stream.MosaicStream;
    # mosaic_umats, axes and angles are then empty)
    mosaic_stream: object | None = None

    def zero_phi_step(self) -> int | None:
        """The first phi step exactly at phi = 0, or None (see :func:`zero_phi_step`)."""
        return zero_phi_step(self.phi0_rad, self.phistep_rad, self.phisteps)

    @property
    def domains(self) -> int:
        """Number of mosaic domains."""
        return self.mosaic_stream.count if self.mosaic_stream is not None \
            else len(self.mosaic_umats)


@dataclass(frozen=True, eq=False)
class StructureFactorConfig:
    """Structure factors on an integer (h, k, l) grid.

    ``grid`` has shape (nh, nk, nl) for indices ``hkl_min`` .. ``hkl_min + shape - 1``, or is
    None when no amplitudes were read (every reflection then has ``default_F``).
    """

    grid: np.ndarray | None
    hkl_min: tuple = (0, 0, 0)
    default_F: float = 0.0
    interpolate: bool = False


@dataclass(frozen=True, eq=False)
class SamplingConfig:
    """Sub-pixel sampling, resolution cut and the per-sub-pixel correction switches."""

    oversample: int = 1
    oversample_thick: bool = False
    oversample_polar: bool = False
    oversample_omega: bool = False
    dmin_m: float = 0.0
    water_size_m: float = 0.0


@dataclass(frozen=True, eq=False)
class SimulationConfig:
    """Everything the renderer needs for one image."""

    detector: DetectorConfig
    beam: BeamConfig
    crystal: CrystalConfig
    structure_factors: StructureFactorConfig
    sampling: SamplingConfig
    mask: np.ndarray | None = None

    @property
    def steps(self) -> int:
        """NanoBragg's normalisation: sources x mosaic domains x phi steps x oversample^2."""
        n_src = self.beam.sources
        n_mos = self.crystal.domains
        return n_src * n_mos * self.crystal.phisteps * self.sampling.oversample ** 2
