"""Bragg spots, an amorphous background and the detector, in one differentiable call.

nanoBragg renders the crystal's Bragg scattering; its companion programs add the diffuse
scattering of amorphous material (nonBragg: water, air, ice from a F(sin(theta)/lambda)
table) and the detector's response (noisify: point spread, gain, offset, noise). Here they
compose on one :class:`~torchbragg.experiment.Experiment`: the background is rendered on
the experiment's pixels and beam, added to the Bragg image, and the detector effects are
applied to the sum. Without noise every step is differentiable: in the experiment's
parameters, the sample thickness, density and molecular weight, and the PSF width, gain and
offset.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass

import torch

from torchbragg.background import background_for_simulator, molecule_count
from torchbragg.noisify.effects import detector_image
from torchbragg.stol import StructureFactorCurve, read_stol_table

__all__ = ["AmorphousSample", "DetectorResponse", "render_composite", "render_composite_panels"]


@dataclass
class AmorphousSample:
    """Amorphous material in the beam, as nonBragg describes it.

    ``stol`` is a table file (sin(theta)/lambda in 1/Å and F per molecule, nonBragg's
    ``-stol`` format) or a :class:`~torchbragg.stol.StructureFactorCurve`. Sizes in mm
    (thickness along the beam, then width and height), density in g/cm^3, molecular weight
    in g/mol; any of them may be a tensor that requires gradients. nonBragg's defaults: a
    0.1 mm cube of water.
    """

    stol: str | os.PathLike | StructureFactorCurve
    thickness_mm: float | torch.Tensor = 0.1
    width_mm: float | torch.Tensor = 0.1
    height_mm: float | torch.Tensor = 0.1
    density_g_per_cm3: float | torch.Tensor = 1.0
    molecular_weight: float | torch.Tensor = 18.0

    def __post_init__(self) -> None:
        for name in ("thickness_mm", "width_mm", "height_mm", "density_g_per_cm3"):
            _check(name, getattr(self, name), lambda v: v >= 0, "must not be negative")
        _check("molecular_weight", self.molecular_weight, lambda v: v > 0, "must be positive")

    def curve(self, dtype: torch.dtype) -> StructureFactorCurve:
        """F(sin(theta)/lambda) as a module (read from the table file when one is given)."""
        if isinstance(self.stol, StructureFactorCurve):
            return self.stol
        return StructureFactorCurve.from_table(read_stol_table(self.stol), dtype=dtype)

    def molecules(self) -> torch.Tensor:
        """Molecules in the sample: volume x density x Avogadro / molecular weight."""
        return molecule_count(_mm(self.thickness_mm), _mm(self.height_mm), _mm(self.width_mm),
                              _times(self.density_g_per_cm3, 1e6), self.molecular_weight)


@dataclass
class DetectorResponse:
    """noisify's detector response.

    PSF (``"gauss"`` or ``"fiber"``, FWHM in pixels), gain (ADU per photon), ADC offset (ADU),
    read-out noise (rms ADU) and, with ``noise``, flicker, calibration error and Poisson
    counts (torch random numbers, not the C generators).
    """

    psf: str | None = None
    psf_fwhm_px: float | torch.Tensor = 0.0
    psf_radius: int | None = None
    gain: float | torch.Tensor = 1.0
    adc_offset: float | torch.Tensor = 40.0
    readout: float = 0.0
    flicker: float = 0.0
    calibration: float = 0.03
    noise: bool = False

    def __post_init__(self) -> None:
        if self.psf not in (None, "gauss", "fiber"):
            raise ValueError(f"psf must be None, 'gauss' or 'fiber', got {self.psf!r}")
        _check("psf_fwhm_px", self.psf_fwhm_px, lambda v: v >= 0, "must not be negative")
        _check("gain", self.gain, lambda v: v > 0, "must be positive")
        for name in ("readout", "flicker", "calibration"):
            _check(name, getattr(self, name), lambda v: v >= 0, "must not be negative")


def render_composite(experiment, sample: AmorphousSample | None = None,
                     response: DetectorResponse | None = None,
                     generator: torch.Generator | None = None,
                     calibration_generator: torch.Generator | None = None) -> torch.Tensor:
    """(slow, fast) image: Bragg photons, plus the sample's background, through the detector.

    Without ``response`` the result is in photons; with it, in ADU. The background uses the
    experiment's detector and beam as they are (set parameters with ``experiment.set``).
    With noise, ``generator`` draws the shot's noise and ``calibration_generator`` the
    per-pixel calibration error (the same for every image of one detector); None: torch's
    global generator.
    """
    return _compose(experiment.render(), experiment.simulator, sample, response, generator,
                    calibration_generator)


def render_composite_panels(experiment, panels, sample: AmorphousSample | None = None,
                            response: DetectorResponse | None = None,
                            generator: torch.Generator | None = None,
                            calibration_generator: torch.Generator | None = None
                            ) -> dict[str, torch.Tensor]:
    """:func:`render_composite` on every panel of a multi-panel detector.

    ``panels`` is a :class:`torchbragg.panels.MultiPanelDetector` or a
    :class:`~torchbragg.panels.PanelRenderer` (built once for many renders). Each panel gets
    its own background and detector response (the PSF stays within the panel); the
    generators are used panel after panel in the detector's order. Returns panel name ->
    (spixels, fpixels) image.
    """
    from torchbragg.panels import PanelRenderer

    renderer = panels if isinstance(panels, PanelRenderer) else PanelRenderer(experiment,
                                                                              panels)
    return {name: _compose(image, renderer.simulators[name], sample, response, generator,
                           calibration_generator)
            for name, image in renderer().items()}


def _compose(image: torch.Tensor, simulator, sample: AmorphousSample | None,
             response: DetectorResponse | None, generator, calibration_generator
             ) -> torch.Tensor:
    """Bragg ``image`` of ``simulator``'s detector plus background, through the response."""
    if sample is not None:
        image = image + background_for_simulator(simulator, sample.curve(image.dtype),
                                                 sample.molecules())
    if response is None:
        return image
    return detector_image(image, gain=response.gain, adc_offset=response.adc_offset,
                          readout=response.readout, flicker=response.flicker,
                          calibration=response.calibration, psf=response.psf,
                          psf_fwhm_px=response.psf_fwhm_px, psf_radius=response.psf_radius,
                          noise=response.noise, generator=generator,
                          calibration_generator=calibration_generator)


def _check(name: str, value, ok, what: str) -> None:
    """A ValueError naming ``name`` unless ``value`` is finite and ``ok(value)``."""
    number = float(value.detach()) if torch.is_tensor(value) else float(value)
    if not (math.isfinite(number) and ok(number)):
        raise ValueError(f"{name} {what}, got {number:g}")


def _mm(value) -> float | torch.Tensor:
    return _times(value, 1e-3)


def _times(value, factor: float) -> float | torch.Tensor:
    return value * factor
