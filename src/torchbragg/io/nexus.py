"""NeXus/NXmx images: one frame in an HDF5 file that DIALS, XDS (Durin) and nxmx read.

Layout (``NX_class`` of each group in brackets)::

    /entry [NXentry]            definition = "NXmx", start_time
      data [NXdata]             data -> /entry/instrument/detector/data (link)
      source [NXsource]         name
      instrument [NXinstrument] name
        beam [NXbeam]           incident_wavelength (angstrom)
        detector [NXdetector]   data (1, slow, fast), depends_on, distance, beam_center_x/y,
                                x/y_pixel_size, count_time, frame_time, sensor_material,
                                sensor_thickness, saturation_value, description
          transformations [NXtransformations]
            detector_z          translation: sample to the detector plane along its normal
          module [NXdetector_module]
            data_origin, data_size, data_stride
            module_offset       translation within the plane to the first pixel's corner
            fast_pixel_direction, slow_pixel_direction   (value: the pixel size)
      sample [NXsample]         name, depends_on, beam -> /entry/instrument/beam (link)
        transformations [NXtransformations]
          phi                   rotation about the spindle: [start], phi_end, phi_increment_set

Frames. NeXus uses the McStas frame: z along the beam (from the source), y up, x to the left
looking along the beam. nanoBragg's lab frame depends on its convention, so the frame is
built from the beam and the spindle: ``z`` = beam direction, ``x`` = minus the spindle's part
normal to the beam, ``y = z x x``. For the MOSFLM convention (beam +x, spindle +z) this is
McStas ``(x, y, z) = (-z, y, x)`` in nanoBragg's terms, the conversion nanoBragg's own DIALS
origin uses (DIALS's imgCIF frame is McStas turned 180 degrees about y), and the spindle
becomes McStas -x, as on most NeXus beamlines. A spindle along the beam (no rotation
geometry) falls back on the lab axis least parallel to the beam.

Detector position: the chain ``fast_pixel_direction -> module_offset -> detector_z`` adds up to
nanoBragg's ``pix0``, the outer corner of the first pixel, which is where dxtbx (DIALS) puts a
panel's origin; pixel centres are half a pixel further along both axes. The descriptive
``distance`` and ``beam_center_x/y`` (pixels from that corner) are where the beam meets the
detector plane according to the same vectors (:meth:`ImageGeometry.direct_beam`); they equal
the SMV header's values except with ``-twotheta``, where nanoBragg measures them against the
unswung detector normal. They are left out when the beam never meets the plane.

Data type: integer images are stored as signed 32-bit integers (dxtbx reads any signed type
up to 32 bits, but not unsigned 32-bit ones), floating images as float32. Compression:
``bslz4`` (bitshuffle + LZ4, what Eiger detectors write; needs ``hdf5plugin`` to write and to
read), ``gzip`` (level 4 with byte shuffle, readable everywhere), ``none``, or ``auto``:
``bslz4`` when ``hdf5plugin`` is importable, else ``gzip``.
"""

from __future__ import annotations

import datetime
import io
import os
from collections.abc import Sequence

import numpy as np

from torchbragg import __version__
from torchbragg.io.image_geometry import ImageGeometry
from torchbragg.io.images import write_atomic

__all__ = ["COMPRESSIONS", "MISSING_H5PY", "choose_compression", "mcstas_basis", "write_nexus"]

COMPRESSIONS = ("auto", "bslz4", "gzip", "none")
MISSING_H5PY = 'the NeXus file needs h5py: pip install "torchbragg[formats]"'
MISSING_HDF5PLUGIN = ('bitshuffle/LZ4 compression needs hdf5plugin: pip install '
                      '"torchbragg[formats]" (or choose gzip)')
DETECTOR = "/entry/instrument/detector"
SAMPLE = "/entry/sample"


def mcstas_basis(beam: Sequence[float], spindle: Sequence[float]) -> np.ndarray:
    """The McStas axes expressed in nanoBragg's lab frame (see the module notes).

    Parameters
    ----------
    beam : sequence of 3 float
        Direction the incident beam travels, lab frame.
    spindle : sequence of 3 float
        Spindle (phi) axis, lab frame.

    Returns
    -------
    numpy.ndarray, shape (3, 3)
        Rows are the McStas x, y, z unit vectors; ``basis @ v`` gives a lab-frame vector
        ``v`` in McStas components. A proper rotation (determinant +1).
    """
    z = np.asarray(beam, dtype=np.float64)
    z = z / np.linalg.norm(z)
    axis = np.asarray(spindle, dtype=np.float64)
    across = axis - np.dot(axis, z) * z
    if np.linalg.norm(across) < 1e-6 * max(np.linalg.norm(axis), 1e-300):
        fallback = np.eye(3)[int(np.argmin(np.abs(z)))]
        across = fallback - np.dot(fallback, z) * z
    x = -across / np.linalg.norm(across)
    y = np.cross(z, x)
    return np.stack((x, y, z)) + 0.0  # no negative zeros in the file


def choose_compression(compression: str = "auto") -> str:
    """Settle ``auto`` and check that the chosen compression can be written.

    Parameters
    ----------
    compression : {"auto", "bslz4", "gzip", "none"}
        Requested compression.

    Returns
    -------
    str
        ``bslz4``, ``gzip`` or ``none``.

    Raises
    ------
    ValueError
        For an unknown name.
    ImportError
        For ``bslz4`` without ``hdf5plugin``.
    """
    if compression not in COMPRESSIONS:
        raise ValueError(f"unknown NeXus compression {compression!r}; choose one of "
                         + ", ".join(COMPRESSIONS))
    if compression in ("auto", "bslz4"):
        try:
            import hdf5plugin  # noqa: F401 - registers the filters with HDF5
        except ImportError:
            if compression == "bslz4":
                raise ImportError(MISSING_HDF5PLUGIN) from None
            return "gzip"
        return "bslz4"
    return compression


def _h5py():
    """The h5py module, or ImportError with the install hint."""
    try:
        import h5py
    except ImportError:
        raise ImportError(MISSING_H5PY) from None
    return h5py


def _filter_options(compression: str) -> dict:
    """``create_dataset`` keywords for a settled compression name."""
    if compression == "bslz4":
        import hdf5plugin

        return dict(hdf5plugin.Bitshuffle(cname="lz4"))
    if compression == "gzip":
        return {"compression": "gzip", "compression_opts": 4, "shuffle": True}
    return {}


def _frame_data(image: np.ndarray) -> np.ndarray:
    """The image as one frame (1, slow, fast): int32 for integers, float32 otherwise."""
    if np.issubdtype(image.dtype, np.integer):
        info = np.iinfo(np.int32)
        if image.size and (image.min() < info.min or image.max() > info.max):
            raise ValueError("integer NeXus pixels must fit in a signed 32-bit integer, got "
                             f"{image.min()} .. {image.max()}")
        data = image.astype(np.int32)
    elif np.issubdtype(image.dtype, np.floating):
        with np.errstate(over="ignore"):
            data = image.astype(np.float32)
    else:
        raise ValueError(f"NeXus pixels must be integers or floats, not {image.dtype}")
    return data[None]


def _group(parent, name: str, nx_class: str, **attrs):
    """A new group with its ``NX_class`` and other attributes."""
    group = parent.create_group(name)
    group.attrs["NX_class"] = nx_class
    for key, value in attrs.items():
        group.attrs[key] = value
    return group


def _field(parent, name: str, value, units: str | None = None, **attrs):
    """A new dataset with optional ``units`` and other attributes."""
    dataset = parent.create_dataset(name, data=value)
    if units is not None:
        dataset.attrs["units"] = units
    for key, item in attrs.items():
        dataset.attrs[key] = item
    return dataset


def _axis(parent, name: str, values, units: str, kind: str, vector: np.ndarray,
          depends_on: str) -> None:
    """An NXtransformations axis: values with units, type, unit vector and dependency."""
    _field(parent, name, np.atleast_1d(np.asarray(values, dtype=np.float64)), units,
           transformation_type=kind, vector=np.asarray(vector, dtype=np.float64) + 0.0,
           offset=np.zeros(3), offset_units="mm", depends_on=depends_on)


def _detector_chain(detector, module, g: ImageGeometry, basis: np.ndarray) -> None:
    """Place the detector: normal distance, in-plane offset, pixel directions (mm)."""
    fdet, sdet, odet = (basis @ np.asarray(v) for v in (g.fdet, g.sdet, g.odet))
    pix0_mm = basis @ np.asarray(g.pix0_m) * 1000.0
    normal_mm = float(np.dot(pix0_mm, odet))
    in_plane = pix0_mm - normal_mm * odet
    length = float(np.linalg.norm(in_plane))
    direction = in_plane / length if length > 0.0 else fdet
    transformations = _group(detector, "transformations", "NXtransformations")
    z_path = f"{DETECTOR}/transformations/detector_z"
    offset_path = f"{DETECTOR}/module/module_offset"
    _axis(transformations, "detector_z", normal_mm, "mm", "translation", odet, ".")
    _axis(module, "module_offset", length, "mm", "translation", direction, z_path)
    for name, vector in (("fast_pixel_direction", fdet), ("slow_pixel_direction", sdet)):
        _axis(module, name, g.pixel_size_mm, "mm", "translation", vector, offset_path)
    _field(detector, "depends_on", z_path)


def _detector(instrument, frames: np.ndarray, g: ImageGeometry, basis: np.ndarray,
              options: dict) -> None:
    """The NXdetector group with its data, description and module."""
    detector = _group(instrument, "detector", "NXdetector")
    detector.create_dataset("data", data=frames, chunks=frames.shape, **options)
    _field(detector, "description",
           f"torchbragg {__version__} simulated pixel-array detector")
    _field(detector, "type", "simulated pixel array")
    beam = g.direct_beam()  # from the same vectors as the transformations below
    if beam is not None:
        fast_px, slow_px, distance_mm = beam
        _field(detector, "distance", distance_mm, "mm")
        _field(detector, "beam_center_x", fast_px, "pixel")
        _field(detector, "beam_center_y", slow_px, "pixel")
    _field(detector, "x_pixel_size", g.pixel_size_mm / 1000.0, "m")
    _field(detector, "y_pixel_size", g.pixel_size_mm / 1000.0, "m")
    _field(detector, "count_time", g.exposure_s, "s")
    _field(detector, "frame_time", g.exposure_s, "s")
    _field(detector, "sensor_material", "Silicon")
    _field(detector, "sensor_thickness", g.thickness_mm, "mm")
    _field(detector, "bit_depth_image", 32)
    if np.issubdtype(frames.dtype, np.integer):
        _field(detector, "saturation_value", np.int64(65535))
    module = _group(detector, "module", "NXdetector_module")
    _field(module, "data_origin", np.zeros(2, dtype=np.int64))
    _field(module, "data_size", np.array(frames.shape[1:], dtype=np.int64))
    _field(module, "data_stride", np.ones(2, dtype=np.int64))
    _detector_chain(detector, module, g, basis)


def _sample(entry, g: ImageGeometry, basis: np.ndarray, h5py) -> None:
    """The NXsample group with its phi axis: start angle and increment (degrees)."""
    sample = _group(entry, "sample", "NXsample")
    _field(sample, "name", "simulated crystal")
    transformations = _group(sample, "transformations", "NXtransformations")
    axis = basis @ np.asarray(g.spindle)
    _axis(transformations, "phi", g.phi_start_deg, "deg", "rotation", axis, ".")
    _field(transformations, "phi_end", [g.phi_start_deg + g.phi_increment_deg], "deg")
    _field(transformations, "phi_increment_set", g.phi_increment_deg, "deg")
    _field(sample, "depends_on", f"{SAMPLE}/transformations/phi")
    sample["beam"] = h5py.SoftLink("/entry/instrument/beam")


def nexus_bytes(image: np.ndarray, geometry: ImageGeometry, compression: str = "auto",
                start_time: datetime.datetime | None = None) -> bytes:
    """The whole NXmx file, built in memory.

    Parameters
    ----------
    image : numpy.ndarray, shape (slow, fast)
        Integer (stored as int32) or floating (stored as float32) pixels.
    geometry : ImageGeometry
        Detector, beam and scan; its shape must be the image's.
    compression : {"auto", "bslz4", "gzip", "none"}
        Filter for the pixel data, see the module notes.
    start_time : datetime.datetime, optional
        Written as ``start_time`` (ISO 8601, UTC); default now.

    Returns
    -------
    bytes
        The HDF5 file.
    """
    h5py = _h5py()
    frames = _frame_data(geometry.check_image(image))
    options = _filter_options(choose_compression(compression))
    basis = mcstas_basis(geometry.beam, geometry.spindle)
    when = (start_time or datetime.datetime.now(datetime.timezone.utc))
    when = when.astimezone(datetime.timezone.utc)
    buffer = io.BytesIO()
    with h5py.File(buffer, "w") as handle:
        handle.attrs.update({"default": "entry", "creator": f"torchbragg {__version__}",
                             "NX_class": "NXroot"})
        entry = _group(handle, "entry", "NXentry", default="data")
        _field(entry, "definition", "NXmx")
        _field(entry, "start_time", when.strftime("%Y-%m-%dT%H:%M:%S.%fZ"))
        source = _group(entry, "source", "NXsource")
        _field(source, "name", "torchbragg simulation")
        instrument = _group(entry, "instrument", "NXinstrument")
        _field(instrument, "name", "torchbragg", short_name="torchbragg")
        beam = _group(instrument, "beam", "NXbeam")
        _field(beam, "incident_wavelength", geometry.wavelength_A, "angstrom")
        _detector(instrument, frames, geometry, basis, options)
        _sample(entry, geometry, basis, h5py)
        data = _group(entry, "data", "NXdata", signal="data")
        data["data"] = handle[f"{DETECTOR}/data"]  # a hard link: one copy of the pixels
    return buffer.getvalue()


def write_nexus(path: str | os.PathLike, image: np.ndarray, geometry: ImageGeometry,
                compression: str = "auto",
                start_time: datetime.datetime | None = None) -> None:
    """Write one frame as a NeXus/NXmx HDF5 file, atomically.

    The file is built in memory and then written as the other outputs are (see
    :func:`torchbragg.io.images.write_atomic`): a reader never sees half a file, and a device
    or symbolic link is written through. The command line passes the ``-intfile`` integers,
    so the NeXus, CBF and SMV images hold the same numbers.

    Parameters
    ----------
    path : str or os.PathLike
        Destination file (``.nxs``, ``.h5``).
    image : numpy.ndarray, shape (slow, fast)
        Integer pixels in the int32 range (stored as int32) or floating pixels (float32).
    geometry : ImageGeometry
        Detector, beam and scan; its shape must be the image's.
    compression : {"auto", "bslz4", "gzip", "none"}
        Filter for the pixel data: ``auto`` is ``bslz4`` when ``hdf5plugin`` is importable,
        else ``gzip``. Reading ``bslz4`` data needs ``import hdf5plugin`` first.
    start_time : datetime.datetime, optional
        Written as ``/entry/start_time``; default now.

    Raises
    ------
    ImportError
        Without h5py, or for ``bslz4`` without hdf5plugin (the message says what to install).
    ValueError
        For a bad image (shape, dtype, range) or an unknown compression.
    OSError
        If the file cannot be written (``cannot write <path>: <reason>``).
    """
    write_atomic(path, [nexus_bytes(image, geometry, compression, start_time)])
