"""The pixel detector: placement, orientation and pixel positions."""

from __future__ import annotations

import torch
from torch import nn

from torchbragg.config import DetectorConfig
from torchbragg.geometry import DetectorFrame, detector_frame, rotate_axis
from torchbragg.models._params import buffer, parameter


class Detector(nn.Module):
    """A flat (or curved) pixel detector placed as nanoBragg places it.

    Refinable parameters (metres, radians): ``distance_m``, ``close_distance_m`` (only when
    given), ``beam_fs_m`` (direct-beam spot, fast and slow), ``close_fs_m`` (point of closest
    approach), ``rotations_rad`` (about x, y, z), ``twotheta_rad``, ``pixel_size_m``, and for
    a sensor of some thickness ``thickness_m`` (the layers keep their number and share it)
    and ``mu_per_m`` (attenuation coefficient). Which of ``beam_fs_m`` and ``close_fs_m`` is
    held fixed while rotating depends on the pivot.
    """

    def __init__(self, config: DetectorConfig, dtype: torch.dtype = torch.float64):
        super().__init__()
        self.config = config
        self.pivot = config.pivot
        self.fpixels, self.spixels = config.fpixels, config.spixels
        self.distance_m = parameter(config.distance_m, dtype)
        self.close_distance_m = (None if config.close_distance_m is None
                                 else parameter(config.close_distance_m, dtype))
        self.beam_fs_m = parameter((config.beam_f_m, config.beam_s_m), dtype)
        self.close_fs_m = parameter((config.close_f_m, config.close_s_m), dtype)
        self.rotations_rad = parameter(config.rotations_rad, dtype)
        self.twotheta_rad = parameter(config.twotheta_rad, dtype)
        self.pixel_size_m = parameter(config.pixel_size_m, dtype)
        self.thickness_m = parameter(config.thickness_m, dtype)
        self.mu_per_m = parameter(config.mu_per_m, dtype)
        for name in ("fdet", "sdet", "odet", "twotheta_axis"):
            self.register_buffer(name + "0", buffer(getattr(config, name), dtype))

    def thickstep_m(self) -> torch.Tensor:
        """Thickness of one sensor layer (m): the configured step, scaled with the thickness."""
        t0 = self.config.thickness_m
        if t0 == 0.0:
            return self.thickness_m * 0.0 + self.config.thickstep_m
        return self.config.thickstep_m * (self.thickness_m / t0)

    def frame(self, beam: torch.Tensor) -> DetectorFrame:
        """Rotated axes and origin of the detector for incident-beam direction ``beam`` (3,)."""
        axes = dict(fdet=self.fdet0, sdet=self.sdet0, odet=self.odet0, beam=beam,
                    twotheta_axis=self.twotheta_axis0)
        return detector_frame(axes, self.rotations_rad, self.twotheta_rad, self.pivot,
                              self.beam_fs_m, self.close_fs_m, self.distance_m,
                              self.close_distance_m)

    def subpixel_positions(self, frame: DetectorFrame, beam: torch.Tensor,
                           fast: torch.Tensor, slow: torch.Tensor, oversample: int,
                           layer_offsets_m: torch.Tensor) -> torch.Tensor:
        """Lab positions (metres) of sub-pixel centres.

        Parameters
        ----------
        fast, slow:
            (P,) pixel indices.
        oversample:
            Sub-pixels per pixel edge; sub-pixels run slow-major (C's subS, subF loops).
        layer_offsets_m:
            (T,) depth of each sensor layer along the detector normal.

        Returns
        -------
        (P, T, oversample^2, 3) positions.
        """
        idx = torch.arange(oversample, device=fast.device)
        sub_s = idx[:, None].expand(-1, oversample).reshape(-1)  # (Q,) slow-major
        sub_f = idx[None, :].expand(oversample, -1).reshape(-1)
        return self.sample_positions(frame, beam, fast[:, None, None], slow[:, None, None],
                                     sub_s, sub_f, layer_offsets_m[:, None], oversample)

    def sample_positions(self, frame: DetectorFrame, beam: torch.Tensor, fast: torch.Tensor,
                         slow: torch.Tensor, sub_s: torch.Tensor, sub_f: torch.Tensor,
                         layer_offset_m: torch.Tensor, oversample: int) -> torch.Tensor:
        """Lab positions (metres) of sub-pixel centres for broadcastable index tensors.

        ``fast``, ``slow`` (pixel), ``sub_s``, ``sub_f`` (sub-pixel) and ``layer_offset_m``
        broadcast to a common shape (...); the result is (..., 3).
        """
        sub = self.pixel_size_m / oversample
        f_det = sub * (fast.to(sub.dtype) * oversample + sub_f) + sub / 2.0
        s_det = sub * (slow.to(sub.dtype) * oversample + sub_s) + sub / 2.0
        pos = (f_det[..., None] * frame.fdet + s_det[..., None] * frame.sdet
               + layer_offset_m[..., None] * frame.odet + frame.pix0)
        if self.config.curved:
            pos = self._curve(pos, frame, beam)
        return pos

    def _curve(self, pos: torch.Tensor, frame: DetectorFrame, beam: torch.Tensor) -> torch.Tensor:
        """Put every pixel at ``distance`` from the sample (nanoBragg's curved detector).

        The flat position's y and z components, divided by the distance, are read as angles
        about the slow and fast axes.
        """
        d = frame.distance
        start = (d * beam).expand_as(pos)
        swung = rotate_axis(start, frame.sdet, pos[..., 1] / d)
        return rotate_axis(swung, frame.fdet, pos[..., 2] / d)
