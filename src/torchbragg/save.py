"""Write a rendered image from Python in any of the command line's formats.

The format follows the file name: ``.bin``/``.raw`` float32 photons (nanoBragg's
``-floatfile``), ``.img``/``.smv`` SMV with nanoBragg's header (``-intfile``), ``.pgm``,
``.cbf`` miniCBF, ``.nxs``/``.h5``/``.nx5`` NeXus/NXmx, ``.png`` a log-scale preview. The
integer formats (SMV, CBF, NeXus) hold the same integers: photons x ``scale`` + ``adc``,
nanoBragg's ``-intfile`` rule (``scale`` None: chosen from the brightest pixel, as nanoBragg
chooses it).
"""

from __future__ import annotations

import os
import warnings

import numpy as np
import torch

__all__ = ["FORMATS", "save_image"]

FORMATS = {".bin": "float", ".raw": "float", ".img": "smv", ".smv": "smv", ".pgm": "pgm",
           ".cbf": "cbf", ".nxs": "nexus", ".h5": "nexus", ".nx5": "nexus", ".png": "png"}


def save_image(path: str | os.PathLike, image, experiment, format: str | None = None,
               scale: float | None = None, adc: float = 40.0,
               rings_A: list[float] | None = None) -> str:
    """Write ``image`` (slow, fast) photons of ``experiment`` to ``path``; returns the format.

    Parameters
    ----------
    path : str or os.PathLike
        Output file, written whole or not at all.
    image : torch.Tensor or numpy.ndarray, shape (slow, fast)
        Photons per pixel (a rendered image; gradients are dropped).
    experiment : torchbragg.Experiment
        Gives the geometry written into the headers.
    format : str, optional
        One of the values of :data:`FORMATS`; None: from the file name's extension.
    scale, adc : float
        Integer formats: counts = photons x scale + adc, as ``-scale`` and ``-adc``.
    rings_A : list of float, optional
        PNG: resolution rings at these d-spacings (Å).
    """
    kind = format or FORMATS.get(os.path.splitext(os.fspath(path))[1].lower())
    if kind not in set(FORMATS.values()):
        raise ValueError(f"cannot tell the format of {os.fspath(path)!r}: give format= one of "
                         f"{', '.join(sorted(set(FORMATS.values())))}")
    floats = _photons(image, experiment)
    if kind == "float":
        from torchbragg.io.images import write_float_image

        write_float_image(path, floats)
    elif kind in ("smv", "cbf", "nexus"):
        _write_integers(path, kind, _integers(floats, experiment, scale, adc), experiment)
    elif kind == "pgm":
        _write_pgm(path, floats, experiment, scale, adc)
    else:
        from torchbragg.io.png import write_png

        write_png(path, floats, _geometry(experiment), rings_A, title=os.path.basename(path))
    return kind


def _photons(image, experiment) -> np.ndarray:
    """(slow, fast) float32 photons, checked against the experiment's detector."""
    if isinstance(image, torch.Tensor):
        image = image.detach().to("cpu", torch.float64).numpy()
    floats = np.asarray(image, dtype=np.float64)
    if floats.shape != tuple(experiment.shape):
        raise ValueError(f"image shape {floats.shape} is not the detector's "
                         f"{tuple(experiment.shape)} (slow, fast)")
    with np.errstate(over="ignore", invalid="ignore"):
        return floats.astype(np.float32)


def _integers(floats: np.ndarray, experiment, scale, adc: float) -> np.ndarray:
    from torchbragg.io.images import int_image

    det = experiment.config.detector
    return int_image(floats, scale, adc, det.roi, mask=experiment.config.mask).pixels


def _geometry(experiment):
    from torchbragg.io.image_geometry import ImageGeometry

    return ImageGeometry.from_config(experiment.config, experiment.plan.info["frame"])


def _write_integers(path, kind: str, ints: np.ndarray, experiment) -> None:
    if kind == "smv":
        from torchbragg.cli.outputs import header_text
        from torchbragg.io.smv import write_smv

        write_smv(path, ints, header_text(experiment.config, experiment.plan.info["frame"]))
    elif kind == "cbf":
        from torchbragg.io.cbf import geometry_problem, write_cbf

        geometry = _geometry(experiment)
        write_cbf(path, ints, geometry)
        problem = geometry_problem(geometry)
        if problem is not None:
            warnings.warn(f"{os.fspath(path)}: the miniCBF header cannot describe this "
                          f"detector: {problem}; use NeXus for the geometry", stacklevel=3)
    else:
        from torchbragg.io.nexus import write_nexus

        write_nexus(path, ints, _geometry(experiment))


def _write_pgm(path, floats: np.ndarray, experiment, scale, adc: float) -> None:
    from torchbragg.io import images, pgm

    det = experiment.config.detector
    stats = images.image_statistics(floats, det.roi, experiment.config.mask)
    ints = images.int_image(floats, scale, adc, det.roi, stats.max_I)
    grey = images.pgm_image(floats, None, stats.rmsd, ints.scale, det.roi)
    pgm.write_pgm(path, grey.pixels, grey.scale)
