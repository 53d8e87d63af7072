"""miniCBF images: a Pilatus-style text header and byte-offset compressed 32-bit pixels.

The file is what Dectris detectors write and what fabio, DIALS (dxtbx), XDS and adxv read:
a CIF data block whose ``_array_data.header_contents`` holds ``# Key value`` lines
(``Pixel_size``, ``Wavelength``, ``Detector_distance``, ``Beam_xy``, ``Start_angle``,
``Angle_increment``...), then a MIME-style binary section holding signed 32-bit integers,
fast index fastest, compressed with CBF's byte-offset scheme, with its size, element type,
dimensions and ``Content-MD5`` (base64 MD5 of the compressed bytes).

The header convention is ``GENERIC_MINI``, dxtbx's name for simulated pixel-array detectors
of any size: with ``PILATUS_1.2`` dxtbx would also mask the gaps of a real Pilatus module
layout and refuse sizes that have none. fabio reads either; its :class:`PilatusHeader` parses
the header lines.

Byte-offset compression: each pixel is stored as its difference from the previous pixel (the
first from 0), in 1 byte when it lies in -127..127, else the byte 0x80 and 2 bytes when in
-32767..32767, else 0x80, the 2 bytes 0x8000 and 4 bytes; all little-endian. Differences are
taken modulo 2^32 as signed 32-bit numbers, so no pixel needs the 8-byte form: every reader
that accumulates in 32 bits (or truncates to 32 bits, as fabio and dxtbx do) gets the pixels
back exactly.
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import os
import re

import numpy as np

from torchbragg import __version__
from torchbragg.io.image_geometry import ImageGeometry
from torchbragg.io.images import write_atomic

__all__ = ["byte_offset_compress", "cbf_header_lines", "write_cbf"]

BINARY_START = b"\x0c\x1a\x04\xd5"
PADDING_BYTES = 4095  # as Pilatus detectors write (CBFlib readers may read ahead)
HEADER_CONVENTION = "GENERIC_MINI"
INT32_RANGE = (-(2**31), 2**31 - 1)
CRLF = "\r\n"


def byte_offset_compress(pixels: np.ndarray) -> bytes:
    """Compress integers with CBF's byte-offset scheme (see the module notes).

    Parameters
    ----------
    pixels : numpy.ndarray of integers
        Values in the signed 32-bit range, any shape; taken in C (raster) order.

    Returns
    -------
    bytes
        The compressed stream: 1, 3 or 7 bytes per pixel.

    Raises
    ------
    ValueError
        If the values are not integers or do not fit in a signed 32-bit integer.
    """
    values = _int32_values(pixels).reshape(-1)
    with np.errstate(over="ignore"):
        delta = np.diff(values, prepend=np.int32(0))  # int32: wraps modulo 2^32
    stream = delta.astype(np.int8).view(np.uint8)  # right wherever one byte suffices
    escaped = np.flatnonzero((delta < -127) | (delta > 127))
    if escaped.size == 0:
        return stream.tobytes()
    wide = delta[escaped].astype(np.int64)
    two = np.abs(wide) <= 32767
    little = wide.astype("<i8").view(np.uint8).reshape(-1, 8)
    sequences = [(escaped[two], _with_marker(little[two, :2], b"\x80")),
                 (escaped[~two], _with_marker(little[~two, :4], b"\x80\x00\x80"))]
    positions, inserted = [], []
    for where, rows in sequences:
        stream[where] = rows[:, -1]  # each pixel's byte becomes its sequence's last byte,
        positions.append(np.repeat(where, rows.shape[1] - 1))  # the others go before it
        inserted.append(rows[:, :-1].reshape(-1))
    # np.insert keeps the given order of values inserted at one position
    return np.insert(stream, np.concatenate(positions), np.concatenate(inserted)).tobytes()


def _with_marker(payload: np.ndarray, marker: bytes) -> np.ndarray:
    """Rows ``marker + payload`` (n, len(marker) + k bytes) for payload rows (n, k)."""
    head = np.broadcast_to(np.frombuffer(marker, dtype=np.uint8), (len(payload), len(marker)))
    return np.concatenate((head, payload), axis=1)


def _int32_values(pixels: np.ndarray) -> np.ndarray:
    """The pixels as int32, or ValueError when they are not integers in range."""
    array = np.asarray(pixels)
    if not np.issubdtype(array.dtype, np.integer):
        raise ValueError(f"CBF pixels must be integers, not {array.dtype} (convert the float "
                         "image first, e.g. with torchbragg.io.images.int_image)")
    if array.size and (array.min() < INT32_RANGE[0] or array.max() > INT32_RANGE[1]):
        raise ValueError("CBF pixels must fit in a signed 32-bit integer, got "
                         f"{array.min()} .. {array.max()}")
    return array.astype(np.int32, copy=False)


def _number(value: float) -> str:
    """A header number: 10 significant digits, no trailing zeros (``0.0001``, ``1e-10``)."""
    return f"{float(value):.10g}"


def cbf_header_lines(geometry: ImageGeometry, count_cutoff: int = 65535,
                     timestamp: datetime.datetime | None = None) -> list[str]:
    """The ``# Key value`` lines of the Pilatus-style header.

    Parameters
    ----------
    geometry : ImageGeometry
        Detector, beam and scan.
    count_cutoff : int
        Largest trusted pixel value (``Count_cutoff``; DIALS's overload).
    timestamp : datetime.datetime, optional
        Collection time written on the second line; default now (UTC).

    Returns
    -------
    list of str
        Lines without line ends: Detector, timestamp, Pixel_size, sensor, Exposure_time,
        Exposure_period, Tau, Count_cutoff, Threshold_setting, N_excluded_pixels, Wavelength,
        Detector_distance, Beam_xy, Start_angle, Angle_increment, Detector_2theta, Phi.
    """
    g, n = geometry, _number
    when = timestamp or datetime.datetime.now(datetime.timezone.utc)
    pixel_m = n(g.pixel_size_mm / 1000.0)
    return [
        f"# Detector: torchbragg {__version__} simulated pixel-array detector "
        f"({g.convention} convention)",
        f"# {when.strftime('%Y-%m-%dT%H:%M:%S')}.{when.microsecond // 1000:03d}",
        f"# Pixel_size {pixel_m} m x {pixel_m} m",
        f"# Silicon sensor, thickness {g.thickness_mm / 1000.0:.6f} m",
        f"# Exposure_time {n(g.exposure_s)} s",
        f"# Exposure_period {n(g.exposure_s)} s",
        "# Tau = 0 s",
        f"# Count_cutoff {int(count_cutoff)} counts",
        "# Threshold_setting: 0 eV",
        "# N_excluded_pixels = 0",
        f"# Wavelength {n(g.wavelength_A)} A",
        f"# Detector_distance {n(g.distance_mm / 1000.0)} m",
        f"# Beam_xy ({n(g.beam_center_fast_px)}, {n(g.beam_center_slow_px)}) pixels",
        f"# Start_angle {n(g.phi_start_deg)} deg.",
        f"# Angle_increment {n(g.phi_increment_deg)} deg.",
        f"# Detector_2theta {n(g.twotheta_deg)} deg.",
        f"# Phi {n(g.phi_start_deg)} deg.",
    ]


def _block_name(path: str | os.PathLike) -> str:
    """A CIF data block name from the file name (letters, digits, ``._-`` only)."""
    stem = os.path.splitext(os.path.basename(os.fspath(path)))[0]
    return re.sub(r"[^A-Za-z0-9._-]", "_", stem) or "image"


def _binary_section(compressed: bytes, fast: int, slow: int) -> list[bytes]:
    """The MIME binary section: headers, start marker, data, padding and trailer."""
    md5 = base64.b64encode(hashlib.md5(compressed).digest()).decode("ascii")
    lines = [
        "--CIF-BINARY-FORMAT-SECTION--",
        "Content-Type: application/octet-stream;",
        '     conversions="x-CBF_BYTE_OFFSET"',
        "Content-Transfer-Encoding: BINARY",
        f"X-Binary-Size: {len(compressed)}",
        "X-Binary-ID: 1",
        'X-Binary-Element-Type: "signed 32-bit integer"',
        "X-Binary-Element-Byte-Order: LITTLE_ENDIAN",
        f"Content-MD5: {md5}",
        f"X-Binary-Number-of-Elements: {fast * slow}",
        f"X-Binary-Size-Fastest-Dimension: {fast}",
        f"X-Binary-Size-Second-Dimension: {slow}",
        f"X-Binary-Size-Padding: {PADDING_BYTES}",
        "",
        "",
    ]
    trailer = CRLF + "--CIF-BINARY-FORMAT-SECTION----" + CRLF + ";" + CRLF + CRLF
    return [CRLF.join(lines).encode("ascii"), BINARY_START, compressed,
            bytes(PADDING_BYTES), trailer.encode("ascii")]


def cbf_bytes(pixels: np.ndarray, geometry: ImageGeometry, name: str = "image",
              count_cutoff: int = 65535,
              timestamp: datetime.datetime | None = None) -> list[bytes]:
    """The whole miniCBF file, in pieces to write one after another.

    Parameters
    ----------
    pixels : numpy.ndarray of integers, shape (slow, fast)
        Pixel values in the signed 32-bit range.
    geometry : ImageGeometry
        Must match the image shape.
    name : str
        CIF data block name (``data_<name>``).
    count_cutoff, timestamp
        See :func:`cbf_header_lines`.

    Returns
    -------
    list of bytes
        The file content.
    """
    values = geometry.check_image(pixels)
    compressed = byte_offset_compress(values)
    header = [
        f"###CBF: VERSION 1.5, torchbragg {__version__} miniCBF writer",
        "",
        f"data_{name}",
        "",
        f'_array_data.header_convention "{HEADER_CONVENTION}"',
        "_array_data.header_contents",
        ";",
        *cbf_header_lines(geometry, count_cutoff, timestamp),
        ";",
        "",
        "_array_data.data",
        ";",
        "",
    ]
    slow, fast = values.shape
    return [CRLF.join(header).encode("ascii"), *_binary_section(compressed, fast, slow)]


def geometry_problem(geometry: ImageGeometry) -> str | None:
    """Why a miniCBF header cannot describe this detector (None: it can).

    A miniCBF header has no detector axes: readers (dxtbx's) take a detector normal to the
    beam whose fast and slow axes are McStas -x and -y, as nanoBragg's default MOSFLM frame
    gives. Two-theta, detector rotations, mirrored conventions and custom vectors do not fit.
    """
    from torchbragg.io.nexus import mcstas_basis

    basis = mcstas_basis(geometry.beam, geometry.spindle)
    fast, slow, normal = (basis @ np.asarray(v, dtype=np.float64)
                          for v in (geometry.fdet, geometry.sdet, geometry.odet))
    if abs(abs(normal[2]) - 1.0) > 1e-9:
        return "the detector is not normal to the beam (two-theta or rotations)"
    if np.abs(fast - (-1.0, 0.0, 0.0)).max() > 1e-9 or np.abs(slow - (0.0, -1.0, 0.0)).max() \
            > 1e-9:
        return "its fast and slow axes are not those of the MOSFLM frame (readers assume them)"
    return None


def write_cbf(path: str | os.PathLike, image: np.ndarray, geometry: ImageGeometry,
              count_cutoff: int = 65535,
              timestamp: datetime.datetime | None = None) -> None:
    """Write a miniCBF image, atomically (see :func:`torchbragg.io.images.write_atomic`).

    The pixels are stored as given. The command line passes the ``-intfile`` integers
    (photons times ``-scale`` plus ``-adc``, clipped to 0..65535), so the CBF and the SMV
    image hold the same numbers; hence the default ``Count_cutoff`` of 65535.

    Parameters
    ----------
    path : str or os.PathLike
        Destination file; its name (without extension) becomes the CIF data block name.
    image : numpy.ndarray of integers, shape (slow, fast)
        Pixel values in the signed 32-bit range (e.g. ``IntImage.pixels``).
    geometry : ImageGeometry
        Detector, beam and scan; its shape must be the image's.
    count_cutoff : int
        Largest trusted value, written as ``Count_cutoff``.
    timestamp : datetime.datetime, optional
        Collection time for the header; default now (UTC).

    Raises
    ------
    ValueError
        If the image is not integers in the int32 range or its shape is not the geometry's.
    OSError
        If the file cannot be written (``cannot write <path>: <reason>``).
    """
    write_atomic(path, cbf_bytes(image, geometry, _block_name(path), count_cutoff, timestamp))
