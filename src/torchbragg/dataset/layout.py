"""The dataset file: HDF5 with the image stack, an NXmx description, and per-shot truth.

Layout (``NX_class`` in brackets; float arrays not yet rendered hold NaN, images 0)::

    /entry [NXentry]          definition = "NXmx"; attrs: dataset_spec (the spec's text), base
      data [NXdata]           data: (shots, slow, fast) float32, the panels where a CrystFEL
                              file's min_ss/min_fs put them, else one below the other
                              (:func:`panel_places`); chunked per shot, compressed; attr
                              units: photons, or ADU with a [detector]
      instrument [NXinstrument]
        beam [NXbeam]         incident_wavelength (shots,) Å: the shot's (centre) wavelength
        detector [NXdetector] data (hard link to /entry/data/data), depends_on (its
                              transformations/origin), sensor_material, sensor_thickness
                              (mm), panel_names (panels,)
          transformations     origin: a zero translation every module hangs from (the
                              root of a hierarchical reader's detector)
          <panel> [NXdetector_module]   one per panel (single panel: "module")
                              data_origin (slow, fast), data_size (slow, fast),
                              data_stride, module_offset (translation from the sample to
                              the panel's first-pixel outer corner, mm, after origin),
                              fast_pixel_direction, slow_pixel_direction (value: pixel size)
      sample [NXsample]       depends_on "." (each shot's orientation is in truth)
      truth                   a_matrix  (shots, 3, 3) MOSFLM A (columns a*, b*, c* x lambda)
                              misset_deg (shots, 3); N (shots, 3) Na, Nb, Nc
                              mosaic_spread_deg, fluence (photons/m^2), wavelength_A (shots,)
                              thickness_mm (shots,) with a [background]
                              noise_seed (shots,) int64 with detector.noise (-1: not written)
                              spectrum_wavelength_A, spectrum_intensity (shots, bins) and
                              source_wavelength_A (shots, sources) with vary.spectrum
                              seed (scalar); calibration_seed (scalar) with detector.noise
                              done (shots,) bool, set after the shot's other fields

Vectors are in the NeXus (McStas) frame: z along the beam, y up (see
:func:`torchbragg.io.nexus.mcstas_basis`), built from the base's beam and spindle.
"""

from __future__ import annotations

import functools
import os

import numpy as np

from torchbragg.dataset.spec import DatasetSpec

__all__ = ["DatasetError", "assemble", "create_file", "image_shape", "overlapping",
           "panel_places", "reopen_file", "truth_fields", "write_shot"]

TRUTH_FIELDS = {"a_matrix": (3, 3), "misset_deg": (3,), "N": (3,), "mosaic_spread_deg": (),
                "fluence": (), "wavelength_A": ()}


class DatasetError(ValueError):
    """A dataset that cannot be started or resumed (one line says why)."""


def truth_fields(spec: DatasetSpec) -> dict:
    """Per-shot truth datasets of ``spec``: name -> (trailing shape, dtype, fill value)."""
    out = {name: (tail, np.float64, np.nan) for name, tail in TRUTH_FIELDS.items()}
    if spec.background is not None:
        out["thickness_mm"] = ((), np.float64, np.nan)
    if spec.detector is not None and spec.detector["noise"]:
        out["noise_seed"] = ((), np.int64, -1)
    if spec.spectrum is not None:
        bins, sources = spec.spectrum["bins"], spec.spectrum["sources"]
        out["spectrum_wavelength_A"] = ((bins,), np.float64, np.nan)
        out["spectrum_intensity"] = ((bins,), np.float64, np.nan)
        out["source_wavelength_A"] = ((sources,), np.float64, np.nan)
    return out


@functools.lru_cache(maxsize=16)
def panel_places(panels) -> tuple[tuple[int, int], tuple[tuple[int, int], ...]]:
    """A shot image's (slow, fast) shape and each panel's (slow, fast) first-pixel index in it.

    Panels that all carry a ``data_origin`` (a CrystFEL file's min_ss, min_fs) and do not
    overlap there sit where the file puts them (its raw data layout; pixels of no panel
    stay 0); otherwise the panels are placed one below the other in the detector's order.
    """
    corners = [p.data_origin for p in panels]
    if overlapping(panels) or any(c is None for c in corners):
        rows = np.cumsum([0] + [p.spixels for p in panels])
        corners = [(int(r), 0) for r in rows[:-1]]
    corners = tuple(corners)
    shape = (max(c[0] + p.spixels for c, p in zip(corners, panels, strict=True)),
             max(c[1] + p.fpixels for c, p in zip(corners, panels, strict=True)))
    return shape, corners


def overlapping(panels) -> tuple[str, str] | None:
    """Two panels whose places in the raw data (``data_origin``) share a pixel, or None."""
    boxes = [(p.data_origin[0], p.data_origin[0] + p.spixels, p.data_origin[1],
              p.data_origin[1] + p.fpixels, p.name) for p in panels if p.data_origin]
    for k, a in enumerate(boxes):
        for b in boxes[k + 1:]:
            if a[0] < b[1] and b[0] < a[1] and a[2] < b[3] and b[2] < a[3]:
                return a[4], b[4]
    return None


def image_shape(panels) -> tuple[int, int]:
    """The (slow, fast) shape of one shot's image (see :func:`panel_places`)."""
    return panel_places(panels)[0]


def assemble(images: dict, panels):
    """One shot's image (torch, (slow, fast)) from panel name -> (spixels, fpixels) images."""
    import torch

    shape, corners = panel_places(panels)
    first = images[panels.panels[0].name]
    out = torch.zeros(shape, dtype=first.dtype, device=first.device)
    for (ss, fs), p in zip(corners, panels, strict=True):
        out[ss:ss + p.spixels, fs:fs + p.fpixels] = images[p.name]
    return out


def create_file(path: str, spec: DatasetSpec, panels, config):
    """A new file with empty datasets for every shot and the NXmx description.

    ``panels`` is the detector in the base's lab frame (a MultiPanelDetector; one panel for
    a base detector); ``config`` the base's SimulationConfig (beam, spindle, sensor).
    """
    import h5py

    from torchbragg.io.nexus import _filter_options, choose_compression

    shape = image_shape(panels)
    f = h5py.File(path, "w")
    entry = _group(f, "entry", "NXentry")
    entry.attrs["dataset_spec"] = spec.text
    entry.attrs["base"] = " ".join(spec.base)
    entry.create_dataset("definition", data="NXmx")
    data = _group(entry, "data", "NXdata")
    data.attrs["signal"] = "data"
    n = spec.shots
    images = data.create_dataset("data", (n, *shape), np.float32, chunks=(1, *shape),
                                 fillvalue=0.0,
                                 **_filter_options(choose_compression(spec.compression)))
    images.attrs["units"] = "ADU" if spec.detector is not None else "photons"
    _instrument(entry, images, panels, config, n)
    sample = _group(entry, "sample", "NXsample")
    sample.create_dataset("depends_on", data=".")
    sample["beam"] = h5py.SoftLink("/entry/instrument/beam")
    _truth(entry, spec)
    return f


def _group(parent, name: str, nx_class: str):
    group = parent.create_group(name)
    group.attrs["NX_class"] = nx_class
    return group


def _instrument(entry, images, panels, config, shots: int) -> None:
    """NXinstrument: the beam's per-shot wavelength and the detector's modules."""
    from torchbragg.io.nexus import mcstas_basis

    instrument = _group(entry, "instrument", "NXinstrument")
    beam = _group(instrument, "beam", "NXbeam")
    wave = beam.create_dataset("incident_wavelength", (shots,), np.float64, fillvalue=np.nan)
    wave.attrs["units"] = "angstrom"
    detector = _group(instrument, "detector", "NXdetector")
    detector["data"] = images  # a hard link: one copy of the pixels
    origin = f"{detector.name}/transformations/origin"
    _axis(_group(detector, "transformations", "NXtransformations"), "origin", 0.0,
          np.array([0.0, 0.0, 1.0]), ".")
    detector.create_dataset("depends_on", data=origin)
    detector.create_dataset("description", data="torchbragg simulated pixel-array detector")
    detector.create_dataset("sensor_material", data="Silicon")
    thickness = detector.create_dataset("sensor_thickness",
                                        data=config.detector.thickness_m * 1e3)
    thickness.attrs["units"] = "mm"
    detector.create_dataset("panel_names", data=np.array(panels.names, dtype=object),
                            dtype=_string_dtype())
    basis = mcstas_basis(config.beam.beam, config.crystal.spindle)
    several = len(panels) > 1
    _, corners = panel_places(panels)
    for corner, panel in zip(corners, panels, strict=True):
        name = _module_name(panel.name) if several else "module"
        _module(_group(detector, name, "NXdetector_module"), panel, basis, corner, origin)


def _string_dtype():
    import h5py

    return h5py.string_dtype()


def _module_name(name: str) -> str:
    """An HDF5 group name for a panel (no '/', not '.' or '..')."""
    clean = name.replace("/", "_")
    return clean if clean not in ("", ".", "..") else f"panel_{clean or 'unnamed'}"


def _module(module, panel, basis: np.ndarray, corner: tuple, origin: str) -> None:
    """One panel: where its pixels sit in the data (from ``corner``) and in space (mm, McStas).

    Its module_offset hangs from the transformation ``origin``.
    """
    module.create_dataset("data_origin", data=np.array(corner, dtype=np.int64))
    module.create_dataset("data_size", data=np.array([panel.spixels, panel.fpixels],
                                                     dtype=np.int64))
    module.create_dataset("data_stride", data=np.ones(2, dtype=np.int64))
    corner = basis @ np.asarray(panel.origin_mm)
    length = float(np.linalg.norm(corner))
    direction = corner / length if length > 0 else np.array([0.0, 0.0, 1.0])
    path = module.name
    _axis(module, "module_offset", length, direction, origin)
    for name, vector in (("fast_pixel_direction", panel.fast), ("slow_pixel_direction",
                                                                 panel.slow)):
        _axis(module, name, panel.pixel_size_mm, basis @ np.asarray(vector),
              f"{path}/module_offset")


def _axis(group, name: str, value: float, vector: np.ndarray, depends_on: str) -> None:
    """A translation (mm) along ``vector``, after ``depends_on``."""
    axis = group.create_dataset(name, data=np.float64(value))
    axis.attrs.update({"units": "mm", "transformation_type": "translation",
                       "vector": np.asarray(vector, dtype=np.float64) + 0.0,
                       "offset": np.zeros(3), "offset_units": "mm", "depends_on": depends_on})


def _truth(entry, spec: DatasetSpec) -> None:
    """Empty per-shot truth datasets, the seeds and the done flags."""
    n = spec.shots
    truth = entry.create_group("truth")
    for name, (tail, dtype, fill) in truth_fields(spec).items():
        truth.create_dataset(name, (n, *tail), dtype, fillvalue=fill)
    truth.create_dataset("seed", data=np.int64(spec.seed))
    if spec.detector is not None and spec.detector["noise"]:
        from torchbragg.dataset.spec import calibration_seed

        truth.create_dataset("calibration_seed", data=np.int64(calibration_seed(spec)))
    truth.create_dataset("done", (n,), bool, fillvalue=False)


def reopen_file(path: str, spec: DatasetSpec, panels):
    """The file of an interrupted run of the same spec and panel layout, opened for writing."""
    import h5py

    if not os.path.exists(path):
        raise DatasetError(f"--resume: {path} does not exist")
    try:
        f = h5py.File(path, "r+")
    except OSError as err:
        raise DatasetError(f"--resume: {path} is not a dataset file: {err}") from None
    try:
        problem = _resume_problem(f, spec, panels)
    except (KeyError, TypeError, AttributeError) as err:
        f.close()
        raise DatasetError(f"--resume: {path} is not a dataset file: {err}") from None
    if problem:
        f.close()
        raise DatasetError(f"--resume: {path} was written from {problem}")
    return f


def _resume_problem(f, spec: DatasetSpec, panels) -> str | None:
    """Why the open file ``f`` cannot be finished with ``spec`` and ``panels`` (None: it can)."""
    shape, corners = panel_places(panels)
    if (f["entry"].attrs.get("dataset_spec") != spec.text
            or f["entry/data/data"].shape != (spec.shots, *shape)):
        return "another spec"
    needed = ["entry/instrument/beam/incident_wavelength", "entry/truth/done",
              *(f"entry/truth/{name}" for name in truth_fields(spec))]
    missing = [name for name in needed if name not in f]
    if missing:
        return f"another layout (no {missing[0]})"
    detector = f["entry/instrument/detector"]
    several = len(panels) > 1
    for corner, panel in zip(corners, panels, strict=True):
        module = detector.get(_module_name(panel.name) if several else "module")
        if module is None or tuple(int(x) for x in module["data_origin"][()]) != corner:
            return f"another layout (panel {panel.name} placed elsewhere)"
    return None


def write_shot(f, result: dict) -> bool:
    """Write one result unless its shot is done; True when written."""
    i = int(result["index"])
    done = f["entry/truth/done"]
    if done[i]:
        return False
    f["entry/data/data"][i] = result["image"]
    f["entry/instrument/beam/incident_wavelength"][i] = result["wavelength_A"]
    truth = f["entry/truth"]
    for name in truth:
        if truth[name].ndim and name != "done":
            truth[name][i] = result[name]
    done[i] = True
    f.flush()
    return True
