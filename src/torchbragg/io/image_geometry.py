"""The geometry an image file records, in the units image formats use.

nanoBragg's SMV header, the miniCBF header, the NeXus/NXmx file and the PNG preview all
describe the same detector. :class:`ImageGeometry` gathers what they need once, from the
resolved configuration and the rotated detector frame, using the very numbers the SMV header
prints (``DISTANCE``, ``WAVELENGTH``, ``OSC_START``, ``OSC_RANGE``, ``TWOTHETA``, the
direct-beam position ``ADXV_CENTER_X`` / ``DENZO_Y_BEAM``), so that every format agrees.

Vectors are in nanoBragg's lab frame, which depends on the convention: for MOSFLM (the
default) the beam runs along +x and the spindle along +z. Pixel positions follow nanoBragg:
``pix0_m`` is the outer corner of the first pixel and the centre of pixel ``(slow, fast)`` is
``pix0 + (fast + 0.5) p fdet + (slow + 0.5) p sdet`` for pixel size ``p``. Image formats describe
a flat detector: with ``-curved_det`` they describe the flat detector that nanoBragg bends onto
a sphere, an approximation.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from torchbragg.config import SimulationConfig
from torchbragg.io.smv import RTD

__all__ = ["ImageGeometry"]

Vector = tuple[float, float, float]


def _vector(values: Sequence[float] | np.ndarray) -> Vector:
    """Three plain floats."""
    x, y, z = (float(v) for v in np.asarray(values, dtype=np.float64).reshape(3))
    return x, y, z


@dataclass(frozen=True)
class ImageGeometry:
    """Detector, beam and scan of one image, with units in the field names.

    Attributes
    ----------
    fpixels, spixels : int
        Image size along the fast and slow axes (the array is ``(spixels, fpixels)``).
    pixel_size_mm : float
        Square pixel edge.
    distance_mm : float
        Sample to the direct-beam spot along the beam (SMV ``DISTANCE``).
    close_distance_mm : float
        Sample to the detector plane along its normal (SMV ``CLOSE_DISTANCE``).
    wavelength_A : float
        Nominal wavelength in Å (SMV ``WAVELENGTH``).
    beam_center_fast_px, beam_center_slow_px : float
        Where the direct beam meets the detector plane, in pixels from the outer corner of
        the first pixel (pixel ``i`` spans ``i .. i + 1``), as miniCBF's ``Beam_xy`` and
        DIALS expect: nanoBragg's ``Fbeam / pixel`` and ``Sbeam / pixel``.
    exposure_s : float
        Exposure time (``-exposure``).
    phi_start_deg, phi_increment_deg : float
        Spindle angle at the start and the oscillation range (SMV ``OSC_START``, ``OSC_RANGE``).
    twotheta_deg : float
        Detector two-theta swing (SMV ``TWOTHETA``).
    thickness_mm : float
        Sensor thickness (0 when the sensor is not modelled).
    fdet, sdet, odet : tuple of 3 float
        Fast axis, slow axis and normal of the rotated detector, unit vectors, lab frame.
    beam : tuple of 3 float
        Unit vector along which the incident beam travels, lab frame.
    spindle : tuple of 3 float
        Unit spindle (phi) rotation axis, lab frame.
    pix0_m : tuple of 3 float
        Sample to the outer corner of the first pixel, metres, lab frame.
    convention : str
        nanoBragg's convention name (``mosflm``, ``xds``, ``custom``...).
    """

    fpixels: int
    spixels: int
    pixel_size_mm: float
    distance_mm: float
    close_distance_mm: float
    wavelength_A: float
    beam_center_fast_px: float
    beam_center_slow_px: float
    exposure_s: float = 1.0
    phi_start_deg: float = 0.0
    phi_increment_deg: float = 0.0
    twotheta_deg: float = 0.0
    thickness_mm: float = 0.0
    fdet: Vector = (0.0, 0.0, 1.0)
    sdet: Vector = (0.0, -1.0, 0.0)
    odet: Vector = (1.0, 0.0, 0.0)
    beam: Vector = (1.0, 0.0, 0.0)
    spindle: Vector = (0.0, 0.0, 1.0)
    pix0_m: Vector = (0.1, 0.0, 0.0)
    convention: str = "mosflm"

    @classmethod
    def from_config(cls, config: SimulationConfig, frame: Mapping) -> ImageGeometry:
        """Collect the geometry of a resolved run.

        Parameters
        ----------
        config : SimulationConfig
            The run's configuration (``plan.config``).
        frame : mapping
            The rotated detector frame (``plan.info["frame"]``): ``fdet``, ``sdet``, ``odet``,
            ``pix0`` (m), ``beam_f``, ``beam_s`` (m), ``distance``, ``close_distance`` (m).

        Returns
        -------
        ImageGeometry
            Values computed as the SMV header computes them.
        """
        det, beam, xtal = config.detector, config.beam, config.crystal
        pixel_m = det.pixel_size_m
        return cls(
            fpixels=int(det.fpixels), spixels=int(det.spixels),
            pixel_size_mm=pixel_m * 1000.0,
            distance_mm=float(frame["distance"]) * 1000.0,
            close_distance_mm=float(frame["close_distance"]) * 1000.0,
            wavelength_A=beam.wavelength_m * 1e10,
            beam_center_fast_px=float(frame["beam_f"]) / pixel_m,
            beam_center_slow_px=float(frame["beam_s"]) / pixel_m,
            exposure_s=float(beam.exposure_s),
            phi_start_deg=xtal.phi0_rad * RTD, phi_increment_deg=xtal.osc_rad * RTD,
            twotheta_deg=det.twotheta_rad * RTD, thickness_mm=det.thickness_m * 1000.0,
            fdet=_vector(frame["fdet"]), sdet=_vector(frame["sdet"]),
            odet=_vector(frame["odet"]), beam=_vector(beam.beam),
            spindle=_vector(xtal.spindle), pix0_m=_vector(frame["pix0"]),
            convention=det.convention)

    @classmethod
    def simple(cls, fpixels: int, spixels: int, pixel_size_mm: float, distance_mm: float,
               wavelength_A: float, beam_center_fast_px: float | None = None,
               beam_center_slow_px: float | None = None, **scan) -> ImageGeometry:
        """A detector normal to the beam, in nanoBragg's MOSFLM frame (handy for tests).

        Parameters
        ----------
        fpixels, spixels : int
            Image size (fast, slow).
        pixel_size_mm, distance_mm, wavelength_A : float
            Pixel edge, sample-to-detector distance and wavelength.
        beam_center_fast_px, beam_center_slow_px : float, optional
            Direct-beam position in pixels from the first pixel's corner; default the
            middle of the detector.
        **scan
            Other fields: ``exposure_s``, ``phi_start_deg``, ``phi_increment_deg``,
            ``thickness_mm``.

        Returns
        -------
        ImageGeometry
            Fast axis +z, slow axis -y, normal and beam +x, spindle +z.
        """
        bf = fpixels / 2.0 if beam_center_fast_px is None else beam_center_fast_px
        bs = spixels / 2.0 if beam_center_slow_px is None else beam_center_slow_px
        p_m = pixel_size_mm / 1000.0
        pix0 = np.array([distance_mm / 1000.0, 0.0, 0.0]) - bf * p_m * np.array(
            [0.0, 0.0, 1.0]) - bs * p_m * np.array([0.0, -1.0, 0.0])
        return cls(fpixels=int(fpixels), spixels=int(spixels), pixel_size_mm=pixel_size_mm,
                   distance_mm=distance_mm, close_distance_mm=distance_mm,
                   wavelength_A=wavelength_A, beam_center_fast_px=bf,
                   beam_center_slow_px=bs, pix0_m=_vector(pix0), **scan)

    @property
    def shape(self) -> tuple[int, int]:
        """Image shape ``(slow, fast)``."""
        return self.spixels, self.fpixels

    def check_image(self, image: np.ndarray) -> np.ndarray:
        """Return ``image`` as an array, or raise ValueError unless it is ``shape``.

        Parameters
        ----------
        image : array_like, shape (spixels, fpixels)
            Pixel values.

        Returns
        -------
        numpy.ndarray
            The same values (no copy when already an array).
        """
        array = np.asarray(image)
        if array.shape != self.shape:
            raise ValueError(f"image shape {array.shape} differs from the geometry's "
                             f"(slow, fast) = {self.shape}")
        return array

    def two_theta_rad(self, fast_px: np.ndarray, slow_px: np.ndarray) -> np.ndarray:
        """Scattering angle at points of the detector plane.

        Parameters
        ----------
        fast_px, slow_px : numpy.ndarray
            Positions in pixels from the outer corner of the first pixel (pixel centres are
            at ``i + 0.5``); broadcast together.

        Returns
        -------
        numpy.ndarray
            Angle between the incident beam and sample-to-point direction, radians.
        """
        p_m = self.pixel_size_mm / 1000.0
        fast = np.asarray(fast_px, dtype=np.float64)[..., None] * p_m
        slow = np.asarray(slow_px, dtype=np.float64)[..., None] * p_m
        point = (np.asarray(self.pix0_m) + fast * np.asarray(self.fdet)
                 + slow * np.asarray(self.sdet))
        length = np.linalg.norm(point, axis=-1)
        cosine = point @ np.asarray(self.beam) / np.where(length > 0, length, 1.0)
        return np.arccos(np.clip(cosine, -1.0, 1.0))

    def direct_beam(self) -> tuple[float, float, float] | None:
        """Where the incident beam meets the detector plane, from the vectors alone.

        Equal to ``beam_center_fast_px``, ``beam_center_slow_px`` and ``distance_mm`` except
        with ``-twotheta``: nanoBragg (and so its SMV header and these fields) then measures
        the beam against the detector normal before the two-theta swing.

        Returns
        -------
        tuple of (float, float, float) or None
            ``(fast_px, slow_px, distance_mm)``: the point in pixels from the outer corner of
            the first pixel, and its distance from the sample; None when the beam runs
            parallel to the plane or away from it.
        """
        beam, normal = np.asarray(self.beam), np.asarray(self.odet)
        pix0 = np.asarray(self.pix0_m)
        along = float(beam @ normal)
        reach = float(pix0 @ normal) / along if along != 0.0 else math.nan
        if not (reach > 0.0 and math.isfinite(reach)):
            return None
        axes = np.column_stack((np.asarray(self.fdet), np.asarray(self.sdet)))
        (fast_m, slow_m), *_ = np.linalg.lstsq(axes, reach * beam - pix0, rcond=None)
        p_m = self.pixel_size_mm / 1000.0
        return float(fast_m) / p_m, float(slow_m) / p_m, reach * 1000.0

    def two_theta_of_d_rad(self, d_A: float) -> float:
        """Bragg's scattering angle 2θ for spacing ``d_A`` (Å); NaN beyond the resolution limit."""
        sine = self.wavelength_A / (2.0 * d_A)
        return 2.0 * math.asin(sine) if 0.0 < sine <= 1.0 else math.nan
