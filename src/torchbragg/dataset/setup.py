"""What a worker builds once for a spec: the experiment, its panels, the spectrum's sources.

:func:`prepare` turns a spec into a :class:`Setup`: the base experiment (with the spectrum's
sources, and an atomic model's structure factors computed far enough for every panel and
wavelength), the detector as panels in the base's lab frame, and a panel renderer when a
geometry file replaces the base's detector.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from torchbragg.dataset.spec import DatasetSpec, Distribution, SpecError, read_geometry

__all__ = ["Setup", "files_to_lab", "model_dmin_A", "prepare", "set_source_wavelengths"]


@dataclass
class Setup:
    """A spec's experiment and detector.

    Attributes
    ----------
    experiment : torchbragg.Experiment
        Built from the base (and the spectrum's and model's extra arguments).
    panels : torchbragg.panels.MultiPanelDetector
        The geometry file's panels, or the base's detector as one panel named "detector"
        (lab frame, mm).
    renderer : torchbragg.panels.PanelRenderer or None
        With a geometry file: renders every panel.
    arguments : tuple of str
        The command line the experiment was built from.
    """

    experiment: object
    panels: object
    renderer: object
    arguments: tuple


def files_to_lab(kind: str, config) -> np.ndarray:
    """(3, 3) matrix from a geometry file's frame to the base's lab frame.

    The file's beam goes along the base's beam and its "up" along polarization x beam (for
    nanoBragg's MOSFLM convention: beam +x, up +y).
    """
    beam = np.asarray(config.beam.beam, dtype=np.float64)
    beam = beam / np.linalg.norm(beam)
    up = np.cross(np.asarray(config.beam.polar_vector, dtype=np.float64), beam)
    up = up - (up @ beam) * beam
    if not np.linalg.norm(up) > 1e-9:
        raise SpecError("geometry: the base's polarization is along its beam, so 'up' is "
                        "undefined")
    up = up / np.linalg.norm(up)
    if kind == "crystfel":
        from torchbragg.panels import crystfel_to_lab

        return crystfel_to_lab(beam, up)
    from torchbragg.io.dials import dials_to_lab

    return dials_to_lab(beam, up)


def _source_arguments(spec: DatasetSpec) -> list[str]:
    """Options making one wavelength per spectrum source (their values set per shot).

    The dispersion spans the spectrum's grid (+-2 FWHM), so that anything derived from the
    configured range (a model's resolution) covers every wavelength a shot can have.
    """
    if spec.spectrum is None:
        return []
    width = 4.0 * spec.spectrum["bandwidth_percent"]
    return ["-dispersion", repr(width), "-dispsteps", str(spec.spectrum["sources"])]


def _model_path(base: tuple[str, ...]) -> str | None:
    """The -hkl file of ``base`` when it is an atomic model without --model-dmin."""
    from torchbragg.io.reflections import file_kind

    if "--model-dmin" in base or any(a.startswith("--model-dmin=") for a in base):
        return None
    for k, arg in enumerate(base[:-1]):
        if arg == "-hkl" and file_kind(base[k + 1]) == "model":
            return base[k + 1]
    return None


def _shortest(dist: Distribution | None, nominal_A: float) -> float:
    """The shortest wavelength (Å) a spec's wavelength distribution gives (normal: -6 sigma)."""
    if dist is None:
        return nominal_A
    return dist.a - 6.0 * dist.b if dist.kind == "normal" else dist.a


def model_dmin_A(spec: DatasetSpec, config, panels) -> float:
    """Resolution (Å) a model's F must reach for every pixel of every shot.

    The largest scattering angle of any panel corner (plus half the divergence) at the
    shortest wavelength (the wavelength distribution's low end, less half the dispersion),
    then three reciprocal-cell lengths more, as for one detector (see ``precedence``).
    """
    from torchbragg.precedence import longest_reciprocal_invA

    beam = np.asarray(config.beam.beam, dtype=np.float64)
    beam = beam / np.linalg.norm(beam)
    widest = 0.0
    for p in panels:
        o, f, s = (np.asarray(v) for v in (p.origin_mm, p.fast, p.slow))
        for a in (0.0, p.fpixels * p.pixel_size_mm):
            for b in (0.0, p.spixels * p.pixel_size_mm):
                corner = o + a * f + b * s
                cos = float(corner @ beam / np.linalg.norm(corner))
                widest = max(widest, math.acos(min(max(cos, -1.0), 1.0)))
    widest = min(widest + max(config.beam.divergence_rad) / 2.0, math.pi)
    nominal = config.beam.wavelength_m * 1e10
    shortest = _shortest(spec.vary.get("wavelength_A"), nominal)
    shortest *= 1.0 - config.beam.dispersion / 2.0
    reach = (2.0 * math.sin(widest / 2.0) / shortest
             + 3.0 * longest_reciprocal_invA(config.crystal))
    return 1.0 / reach


def prepare(spec: DatasetSpec, device: str = "cpu") -> Setup:
    """Build the experiment and detector of ``spec`` on ``device``.

    Raises ExperimentError for a base that does not run, SpecError for a geometry that does
    not fit it.
    """
    from torchbragg.experiment import Experiment
    from torchbragg.panels import MultiPanelDetector, PanelRenderer, single_panel

    arguments = (*spec.base, *_source_arguments(spec))
    model = _model_path(spec.base)
    exp = Experiment.from_args(list(arguments), device=device)
    panels = (read_geometry(spec.geometry, files_to_lab(spec.geometry["kind"], exp.config))
              if spec.geometry is not None else None)
    if model is not None:  # built again, with F to the resolution every shot reaches
        dmin = model_dmin_A(spec, exp.config, panels or [single_panel(exp.config)])
        arguments = (*arguments, "--model-dmin", repr(dmin))
        exp = Experiment.from_args(list(arguments), device=device)
    _check_sources(spec, exp)
    if exp.config.detector.curved:
        raise SpecError("base: -curved_det is not supported in datasets (the file describes "
                        "flat panels)")
    if panels is not None:
        _check_facing(panels, exp.config)
        _check_size(panels)
    renderer = PanelRenderer(exp, panels) if panels is not None else None
    panels = panels or MultiPanelDetector((single_panel(exp.config, "detector"),))
    return Setup(exp, panels, renderer, arguments)


def _check_facing(panels, config) -> None:
    """Every panel must face the beam in the base's frame (none edge-on)."""
    from torchbragg.panels import edge_on

    panel = edge_on(panels, config.beam.beam)
    if panel is not None:
        raise SpecError(f"geometry: panel {panel.name} is edge-on to the beam (its file's "
                        "beam direction is taken along the base's beam)")


MAX_IMAGE_PIXELS = 2 ** 28  # one shot's image (1 GiB of float32)


def _check_size(panels) -> None:
    """The image the panels' places make must be of a size one shot can hold."""
    from torchbragg.dataset.layout import panel_places

    slow, fast = panel_places(panels)[0]
    if slow * fast > MAX_IMAGE_PIXELS:
        raise SpecError(f"geometry: the panels' places in the file's data layout make a "
                        f"{slow} x {fast} image per shot, more than {MAX_IMAGE_PIXELS} pixels "
                        "(check min_ss/min_fs)")


def _check_sources(spec: DatasetSpec, exp) -> None:
    """The spectrum's sources: every divergence point has each of its wavelengths."""
    if spec.spectrum is None:
        return
    beam = exp.simulator.beam
    if beam.source_grid is not None:
        raise SpecError("vary.spectrum: more than 65536 sources (divergence points x "
                        "spectrum sources); use fewer")
    if beam.wavelengths_m.numel() % spec.spectrum["sources"]:
        raise SpecError(f"vary.spectrum: the base makes {beam.wavelengths_m.numel()} sources, "
                        f"not a multiple of {spec.spectrum['sources']}")


def set_source_wavelengths(exp, wavelengths_A: np.ndarray) -> None:
    """Give the sources ``wavelengths_A`` (S,), repeated for every divergence point.

    Sources run wavelength fastest (as nanoBragg orders them). The configured wavelengths
    are set so that, scaled by the current nominal wavelength, they come out as given.
    """
    import torch

    beam = exp.simulator.beam
    waves = np.tile(np.asarray(wavelengths_A, dtype=np.float64) * 1e-10,
                    beam.wavelengths_m.numel() // len(wavelengths_A))
    ratio = float(beam.wavelength_m) / beam.config.wavelength_m
    with torch.no_grad():
        beam.wavelengths_m.copy_(torch.as_tensor(waves / ratio, dtype=beam.wavelengths_m.dtype))
