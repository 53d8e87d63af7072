"""miniCBF output: fabio reads back the pixels and the Pilatus-style geometry keys."""

from __future__ import annotations

import base64
import datetime
import hashlib

import numpy as np
import pytest

from torchbragg.io.cbf import byte_offset_compress, cbf_header_lines, write_cbf
from torchbragg.io.image_geometry import ImageGeometry

fabio = pytest.importorskip("fabio")
from fabio.cbfimage import PilatusHeader  # noqa: E402
from fabio.compression import compByteOffset, decByteOffset  # noqa: E402

GEOMETRY = ImageGeometry.simple(53, 37, pixel_size_mm=0.172, distance_mm=250.0,
                                wavelength_A=0.9795, beam_center_fast_px=20.25,
                                beam_center_slow_px=10.5, exposure_s=0.2,
                                phi_start_deg=12.5, phi_increment_deg=0.1, thickness_mm=0.45)


def random_image(rng, shape=(37, 53), jumps=True) -> np.ndarray:
    """Small values with some jumps beyond one byte, two bytes, and negative values."""
    image = rng.integers(-100, 100, size=shape).astype(np.int32)
    if jumps:
        flat = image.reshape(-1)
        picks = rng.permutation(flat.size)[: max(flat.size // 2, 1)]
        kind = rng.integers(0, 4, size=picks.size)
        choices = (rng.integers(-30000, 30000, size=picks.size),  # two bytes
                   rng.integers(32768, 2**31 - 1, size=picks.size),  # four bytes
                   -rng.integers(32768, 2**31, size=picks.size),
                   rng.integers(-2**31, 2**31 - 1, size=picks.size))  # any, wrapping
        flat[picks] = np.choose(kind, choices)
    return image


def decode(stream: bytes, count: int) -> np.ndarray:
    return np.asarray(decByteOffset(stream, size=count)).astype(np.int32)


@pytest.mark.parametrize("seed", range(8))
def test_byte_offset_round_trip_and_matches_fabio(seed):
    rng = np.random.default_rng(seed)
    image = random_image(rng, shape=(int(rng.integers(1, 40)), int(rng.integers(1, 60))))
    stream = byte_offset_compress(image)
    assert stream == bytes(compByteOffset(image.reshape(-1)))
    np.testing.assert_array_equal(decode(stream, image.size), image.reshape(-1))


@pytest.mark.parametrize(("values", "size"), [
    ([0, 127, 0, -127], 4),  # one byte each
    ([128, 0, -128], 9),  # 0x80 + two bytes each
    ([32767, 0, -32767], 9),
    ([32768, 0, -32768], 21),  # 0x80 0x8000 + four bytes each
    ([2**31 - 1, -2**31, 2**31 - 1], 7 + 1 + 1),  # differences wrap to 1, -1
])
def test_byte_offset_sizes_follow_the_cbf_spec(values, size):
    image = np.array(values, dtype=np.int32)
    stream = byte_offset_compress(image)
    assert len(stream) == size
    np.testing.assert_array_equal(decode(stream, image.size), image)


def test_byte_offset_escape_bytes():
    assert byte_offset_compress(np.array([5, 2], dtype=np.int32)) == b"\x05\xfd"
    assert byte_offset_compress(np.array([300], dtype=np.int32)) == b"\x80\x2c\x01"
    assert byte_offset_compress(np.array([-70000], dtype=np.int32)) == \
        b"\x80\x00\x80" + (-70000).to_bytes(4, "little", signed=True)


def test_byte_offset_refuses_floats_and_wide_integers():
    with pytest.raises(ValueError, match="integers"):
        byte_offset_compress(np.zeros(3))
    with pytest.raises(ValueError, match="32-bit"):
        byte_offset_compress(np.array([2**31], dtype=np.int64))


def test_fabio_reads_pixels_and_geometry(tmp_path):
    image = random_image(np.random.default_rng(1))
    path = tmp_path / "frame.cbf"
    write_cbf(path, image, GEOMETRY)
    cbf = fabio.open(str(path))
    assert cbf.data.dtype == np.int32
    np.testing.assert_array_equal(cbf.data, image)
    assert cbf.header["_array_data.header_convention"] == "GENERIC_MINI"
    keys = PilatusHeader(cbf.header["_array_data.header_contents"])
    assert keys["Pixel_size"] == pytest.approx((172e-6, 172e-6), rel=1e-12)
    assert keys["Detector_distance"] == pytest.approx(0.25)
    assert keys["Wavelength"] == pytest.approx(0.9795)
    assert keys["Beam_xy"] == pytest.approx((20.25, 10.5))
    assert keys["Exposure_time"] == pytest.approx(0.2)
    assert keys["Exposure_period"] == pytest.approx(0.2)
    assert keys["Start_angle"] == pytest.approx(12.5)
    assert keys["Angle_increment"] == pytest.approx(0.1)
    assert keys["Count_cutoff"] == 65535
    assert keys["sensor"] == ("Silicon", pytest.approx(0.45e-3))


def test_binary_header_size_and_md5(tmp_path):
    image = random_image(np.random.default_rng(2))
    path = tmp_path / "frame.cbf"
    write_cbf(path, image, GEOMETRY)
    cbf = fabio.open(str(path))
    stream = byte_offset_compress(image)
    assert int(cbf.header["X-Binary-Size"]) == len(stream)
    assert cbf.header["X-Binary-Size-Fastest-Dimension"] == "53"
    assert cbf.header["X-Binary-Size-Second-Dimension"] == "37"
    assert cbf.header["X-Binary-Number-of-Elements"] == str(image.size)
    assert cbf.header["X-Binary-Element-Type"] == "signed 32-bit integer"
    assert cbf.header["conversions"] == "x-CBF_BYTE_OFFSET"
    assert cbf.header["Content-MD5"] == base64.b64encode(hashlib.md5(stream).digest()).decode()
    raw = path.read_bytes()
    start = raw.index(b"\x0c\x1a\x04\xd5") + 4
    assert raw[start:start + len(stream)] == stream


def test_unsigned_smv_pixels_are_kept(tmp_path):
    pixels = np.random.default_rng(3).integers(0, 65536, size=(37, 53)).astype(np.uint16)
    write_cbf(tmp_path / "u.cbf", pixels, GEOMETRY)
    np.testing.assert_array_equal(fabio.open(str(tmp_path / "u.cbf")).data, pixels)


def test_header_lines_dials_can_split():
    when = datetime.datetime(2024, 5, 1, 12, 34, 56, 789000)
    lines = cbf_header_lines(GEOMETRY, timestamp=when)
    assert lines[1] == "# 2024-05-01T12:34:56.789"
    for line in lines:  # dxtbx splits "# Key value" records after dropping '=' and ':'
        tokens = line.replace("=", "").replace(":", "").split()
        assert tokens[0] == "#" and len(tokens) >= 2
    assert "# Silicon sensor, thickness 0.000450 m" in lines


def test_shape_must_match_geometry(tmp_path):
    with pytest.raises(ValueError, match="differs"):
        write_cbf(tmp_path / "x.cbf", np.zeros((53, 37), dtype=np.int32), GEOMETRY)
    assert not (tmp_path / "x.cbf").exists()


def test_bad_path_is_one_oserror(tmp_path):
    with pytest.raises(OSError, match=r"cannot write .*missing/x\.cbf"):
        write_cbf(tmp_path / "missing" / "x.cbf", np.zeros((37, 53), dtype=np.int32), GEOMETRY)
