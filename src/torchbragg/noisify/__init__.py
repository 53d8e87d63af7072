"""Detector effects of nanoBragg's companion program ``noisify``, and its command line.

Two implementations of the same physics (photon shot noise, beam flicker, per-pixel
calibration error, point spread function, gain, ADC offset, read-out noise):

* :mod:`torchbragg.noisify.exact`: bit-identical to the C program (its random generators,
  float32 arithmetic and summation order; numpy + numba), used by the command line
  ``torchbragg-noisify`` (:mod:`torchbragg.noisify.cli`);
* :mod:`torchbragg.noisify.effects`: PyTorch tensors on any device, differentiable where the
  physics is (PSF width, gain, offset), with torch's own random numbers.

Names are imported on first use, so that the command line does not load torch.
"""

_HOMES = {
    "apply_psf": "effects", "psf_kernel": "effects", "auto_psf_radius": "effects",
    "psf_tail_fraction": "effects", "to_adu": "effects", "poisson_noise": "effects",
    "gaussian_factor": "effects", "readout_noise": "effects", "photons_from_image": "effects",
    "detector_image": "effects", "quantize": "effects",
    "NoiseStreams": "exact", "shot_noise": "exact", "adu_image": "exact",
    "photon_image": "exact",
}
__all__ = list(_HOMES)


def __getattr__(name: str):
    if name in _HOMES:
        import importlib

        return getattr(importlib.import_module(f"torchbragg.noisify.{_HOMES[name]}"), name)
    raise AttributeError(f"module 'torchbragg.noisify' has no attribute {name!r}")
