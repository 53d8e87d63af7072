import os

import numpy as np
import pytest
from io_testdata import C_RUNS, INPUTS, golden_bytes, golden_float_image, golden_stdout

from torchbragg.cli.options import CState
from torchbragg.io.errors import InputFileError
from torchbragg.io.images import (
    format_c_g,
    image_statistics,
    int_image,
    write_float_image,
)
from torchbragg.io.smv import (
    RTD,
    c_header_value,
    parse_smv_header,
    read_smv,
    smv_header_geometry,
    smv_header_text,
    write_smv,
)
from torchbragg.precedence import apply_smv_headers


def mosflm_default_header(noise_file=False):
    """Header values for '-distance 100 -pixel 0.1 -detpixels 128 -lambda 6.2', as C computes."""
    pixel_size = 0.1 / 1000.0
    distance = 100 / 1000.0
    lambda0 = 6.2 / 1.0e10
    pixels = 128
    detsize = pixel_size * pixels
    # MOSFLM default beam centre, then the direct-beam position on the detector
    xbeam = (detsize + pixel_size) / 2.0
    ybeam = (detsize + pixel_size) / 2.0
    fbeam = ybeam + 0.5 * pixel_size
    sbeam = xbeam + 0.5 * pixel_size
    # unrotated detector: fdet=(0,0,1), sdet=(0,-1,0), beam=odet=(1,0,0)
    pix0 = (distance, sbeam, -fbeam)
    return smv_header_text(
        size_fast=pixels,
        size_slow=pixels,
        pixel_size_m=pixel_size,
        distance_m=distance,
        wavelength_m=lambda0,
        xbeam_m=xbeam,
        ybeam_m=ybeam,
        fbeam_m=fbeam,
        sbeam_m=sbeam,
        detsize_s_m=detsize,
        dials_origin_mm=(1000.0 * pix0[2], 1000.0 * pix0[1], -1000.0 * pix0[0]),
        orgx_px=fbeam / pixel_size + 0.5,
        orgy_px=sbeam / pixel_size + 0.5,
        close_distance_m=distance,
        phi0_rad=0.0,
        osc_rad=0.0,
        twotheta_rad=0.0,
        noise_file=noise_file,
    )


def test_header_matches_golden_bytes():
    golden = golden_bytes("sc_smv_pgm", "int.img.gz")
    text = mosflm_default_header()
    assert text.endswith("BEAMLINE=fake;\n}\f")
    padded = text.encode("ascii").ljust(512, b" ")
    assert padded == golden[:512]


def test_noise_header_matches_golden_bytes():
    golden = golden_bytes("noise", "noise.img.gz")
    padded = mosflm_default_header(noise_file=True).encode("ascii").ljust(512, b" ")
    assert padded == golden[:512]


ODD_VALUES = dict(
    size_fast=10,
    size_slow=20,
    pixel_size_m=0.172e-3,
    distance_m=0.23127466,
    wavelength_m=0.9768e-10,
    xbeam_m=0.217742295,
    ybeam_m=0.21390708,
    fbeam_m=-0.0,
    sbeam_m=-0.0,
    detsize_s_m=0.00344,
    dials_origin_mm=(1.0, -2.5, 3e-7),
    orgx_px=float("nan"),
    orgy_px=12.0,
    close_distance_m=0.2,
    phi0_rad=5.0 / RTD,
    osc_rad=0.1 / RTD,
    twotheta_rad=-15 / RTD,
)


def test_header_formats_angles_and_nan():
    entries = parse_smv_header(smv_header_text(**ODD_VALUES))
    assert entries["PIXEL_SIZE"] == "0.172"
    assert entries["DISTANCE"] == "231.275"
    assert entries["WAVELENGTH"] == "0.9768"
    assert entries["BEAM_CENTER_X"] == "217.742"
    assert entries["ADXV_CENTER_Y"] == "3.44"
    assert entries["DENZO_X_BEAM"] == entries["DENZO_Y_BEAM"] == "-0"
    assert entries["DIALS_ORIGIN"] == "1,-2.5,3e-07"
    assert entries["XDS_ORGX"] == "nan"
    assert entries["PHI"] == entries["OSC_START"] == "5"
    assert entries["OSC_RANGE"] == "0.1"
    assert entries["TWOTHETA"] == "-15"
    # the noise image's header adds +0.0 where the int image's subtracts it
    noise = parse_smv_header(smv_header_text(**ODD_VALUES, noise_file=True))
    assert noise["DENZO_X_BEAM"] == noise["DENZO_Y_BEAM"] == "0"


@pytest.mark.parametrize(
    ("case", "size", "scale", "adc", "printed_scale"),
    [
        ("sc_smv_pgm", 128, None, 40.0, "355.636"),
        ("sc_scale_adc", 96, 500.0, 10.0, "500"),
        ("noise", 128, 2000.0, 40.0, "2000"),
    ],
)
def test_int_image_reproduces_golden(tmp_path, case, size, scale, adc, printed_scale):
    golden = golden_bytes(case, "int.img.gz")
    float_image = golden_float_image(case, size, size).astype(np.float64)
    result = int_image(float_image, scale=scale, adc_offset=adc)
    assert f"intfile_scale = {format_c_g(result.scale)}" in golden_stdout(case)
    assert format_c_g(result.scale) == printed_scale
    expected = np.frombuffer(golden[512:], dtype="<u2").reshape(size, size)
    assert result.pixels.dtype == np.uint16
    assert np.array_equal(result.pixels, expected)

    # the whole file, header and pixels
    out = tmp_path / "int.img"
    write_smv(out, result.pixels, golden[:512].decode("ascii").rstrip(" "))
    assert out.read_bytes() == golden


@pytest.mark.parametrize(("case", "size"), [("sc_smv_pgm", 128), ("sc_scale_adc", 96)])
def test_statistics_match_printed_values(case, size):
    stats = image_statistics(golden_float_image(case, size, size))
    stdout = golden_stdout(case)
    line = next(text for text in stdout if text.startswith("max_I = "))
    assert line.startswith(f"max_I = {format_c_g(stats.max_I)}  at ")
    mean = f"mean= {format_c_g(stats.mean)} rms= {format_c_g(stats.rms)} "
    assert f"{mean}rmsd= {format_c_g(stats.rmsd)}" in stdout


def test_roi_and_negative_adc_match_c_run():
    run = C_RUNS / "roi_xds"
    float_image = np.fromfile(run / "float.bin", dtype="<f4").reshape(24, 24)
    roi = (3, 17, 5, 20)
    stats = image_statistics(float_image, roi)
    assert stats.max_pixel == (11, 5)
    result = int_image(float_image, adc_offset=-3.0, roi=roi)
    stdout = (run / "stdout.txt").read_text().splitlines()
    assert f"intfile_scale = {format_c_g(result.scale)}" in stdout
    assert f"max_I = {format_c_g(stats.max_I)}  at 0.000575 0.001175" in stdout
    expected = read_smv(run / "int.img").pixels
    assert np.array_equal(result.pixels, expected)
    assert np.all(result.pixels[:5] == 0)  # outside the ROI stays 0, not the ADC offset


def test_int_conversion_rounding_and_clipping():
    values = np.array([[0.0, 0.49, 0.5, 1.5, 70000.0, -100.0, np.nan, 65534.6]])
    pixels = int_image(values, scale=1.0, adc_offset=0.0).pixels
    assert pixels.tolist() == [[0, 0, 1, 2, 65535, 0, 0, 65535]]
    # auto scale: 55000 / max, and 1.0 for an empty image
    assert int_image(np.full((2, 2), 5.5)).scale == 10000.0
    assert int_image(np.zeros((2, 2))).scale == 1.0


def test_mask_limits_statistics():
    image = np.array([[1.0, 9.0], [3.0, 5.0]])
    mask = np.array([[1, 0], [1, 1]])
    stats = image_statistics(image, mask=mask)
    assert stats.max_I == 5.0
    assert stats.max_pixel == (1, 1)
    assert stats.mean == 3.0
    # rmsd runs over every pixel, masked ones included
    assert stats.rmsd == pytest.approx(np.sqrt(((image - 3.0) ** 2).sum() / 3))


def test_read_golden_int_image(tmp_path):
    image = read_golden_smv(tmp_path, "sc_smv_pgm")
    assert image.header_bytes == 512
    assert image.header["SIZE1"] == "128"
    assert image.header["DIALS_ORIGIN"] == "-6.5,6.5,-100"
    assert image.header["BEAMLINE"] == "fake"
    golden = golden_bytes("sc_smv_pgm", "int.img.gz")
    assert np.array_equal(image.pixels.ravel(), np.frombuffer(golden[512:], dtype="<u2"))


def read_golden_smv(folder, case):
    path = folder / "int.img"
    path.write_bytes(golden_bytes(case, "int.img.gz"))
    return read_smv(path)


def test_c_header_value_quirks(tmp_path):
    text = read_golden_smv(tmp_path, "sc_smv_pgm").header_text
    # the last "DISTANCE" in a header the C program wrote belongs to CLOSE_DISTANCE
    assert c_header_value(text, "DISTANCE") == 100.0
    assert np.isnan(c_header_value("{\nDISTANCE=95;\nCLOSE_DISTANCE=nan;\n}", "DISTANCE"))
    assert c_header_value(text, "ORGX") == 65.5  # found inside XDS_ORGX
    assert np.isnan(c_header_value(text, "NOT_THERE"))
    assert c_header_value("{\nODD_KEY\n}", "ODD_KEY") == 0.0
    assert c_header_value("{\nPIXEL_SIZE=  0.11;\n}", "PIXEL_SIZE") == 0.11


def test_img_and_mask_geometry():
    img = read_smv(INPUTS / "header.img")
    mask = read_smv(INPUTS / "mask.img")
    assert img.pixels.shape == mask.pixels.shape == (120, 140)
    assert np.count_nonzero(mask.pixels == 0) > 0

    from_img = smv_header_geometry(img.header_text, "img")
    assert from_img == {
        "size_fast": 140,
        "size_slow": 120,
        "pixel_size_m": 0.11 / 1000.0,
        "detsize_f_m": 0.11 / 1000.0 * 140,
        "detsize_s_m": 0.11 / 1000.0 * 120,
        "distance_m": 95.0 / 1000.0,
        "wavelength_m": 1.1 / 1e10,
        "xbeam_m": 7.3 / 1000.0,
        "ybeam_m": 6.1 / 1000.0,
        "phi0_rad": 0.0,
        "osc_rad": 0.0,
    }
    from_mask = smv_header_geometry(mask.header_text, "mask")
    assert from_mask["ybeam_m"] == 0.1 / 1000.0 * 120 - 6.5 / 1000.0  # measured from the far edge
    assert from_mask["xbeam_m"] == 7.0 / 1000.0

    # the C program applies the mask header, then the img header, before any option
    state = CState(img_path=str(INPUTS / "header.img"), mask_path=str(INPUTS / "mask.img"))
    apply_smv_headers(state)
    assert (state.fpixels, state.spixels, state.pixel_size) == (140, 120, 0.11 / 1000.0)
    assert (state.Xbeam, state.Ybeam) == (from_img["xbeam_m"], from_img["ybeam_m"])
    assert (state.distance, state.lambda0) == (from_img["distance_m"], from_img["wavelength_m"])
    # case mask_img: -distance/-pixel/-lambda on the command line win; the beam centre is the img's
    assert "  Xbeam=0.0073 Ybeam=0.0061" in golden_stdout("mask_img")


def test_header_pixel_size_defaults_to_previous_file():
    text = "{\nHEADER_BYTES=512;\nSIZE1=10;\nSIZE2=4;\nBEAM_CENTER_Y=0.1;\n}"
    geometry = smv_header_geometry(text, "mask", pixel_size_m=0.2e-3)
    assert geometry["pixel_size_m"] == 0.2e-3
    assert geometry["detsize_s_m"] == 0.2e-3 * 4
    assert geometry["ybeam_m"] == 0.2e-3 * 4 - 0.1 / 1000.0


def smv_file(header: str, pixels: bytes) -> bytes:
    return header.encode().ljust(512, b" ") + pixels


def test_read_big_endian_and_other_header_sizes(write_text):
    values = np.array([[1, 2, 3], [258, 65535, 0]], dtype=">u2")
    header = "{\nHEADER_BYTES=512;\nDIM=2;\nBYTE_ORDER=big_endian;\nTYPE=unsigned_short;\n"
    path = write_text("big.img", smv_file(header + "SIZE1=3;\nSIZE2=2;\n}\f", values.tobytes()))
    assert read_smv(path).pixels.tolist() == values.tolist()

    header_1024 = b"{\nHEADER_BYTES= 1024;\nSIZE1=3;\nSIZE2=2;\n}".ljust(1024, b" ")
    path = write_text("wide.img", header_1024 + values.astype("<u2").tobytes())
    image = read_smv(path)
    assert image.header_bytes == 1024
    assert image.pixels.tolist() == values.tolist()

    square = "{\nHEADER_BYTES=512;\nSIZE1=0;\nDETECTOR_DIMENSIONS=2;\n}"
    path = write_text("square.img", smv_file(square, bytes(8)))
    assert read_smv(path).pixels.shape == (2, 2)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"{\nHEADER_BYTES=512;\n}", "shorter than a 512-byte SMV header"),
        (b"P5\n".ljust(600), "not an SMV image"),
        (smv_file("{\nDIM=2;\n}", b""), "no HEADER_BYTES"),
        (smv_file("{\nHEADER_BYTES=4096;\nSIZE1=2;\nSIZE2=2;\n}", bytes(8)), "exceeds"),
        (smv_file("{\nHEADER_BYTES=512;\nSIZE2=2;\n}", bytes(8)), "no usable image size"),
        (smv_file("{\nHEADER_BYTES=512;\nSIZE1=4;\nSIZE2=4;\n}", bytes(30)), "truncated"),
        (smv_file("{\nHEADER_BYTES=512;\nTYPE=float;\nSIZE1=1;\nSIZE2=1;\n}", bytes(4)), "TYPE"),
    ],
)
def test_bad_smv_files(write_text, content, message):
    path = write_text("bad.img", content)
    with pytest.raises(InputFileError, match=message) as caught:
        read_smv(path)
    assert str(caught.value).startswith(f"{path}: ")


def test_writers_are_atomic_and_replace(tmp_path):
    target = tmp_path / "out.img"
    target.write_bytes(b"old content")
    write_smv(target, np.zeros((2, 3), dtype=np.uint16), "{\nHEADER_BYTES=512;\n}\f")
    data = target.read_bytes()
    assert len(data) == 512 + 12
    assert sorted(os.listdir(tmp_path)) == ["out.img"]
    # a header longer than 512 bytes is written whole, as the C program does
    long_header = "{\n" + "X" * 600 + "\n}\f"
    write_smv(target, np.ones((1, 1), dtype=np.uint16), long_header)
    assert target.read_bytes() == long_header.encode() + b"\x01\x00"
    with pytest.raises(OSError):
        write_smv(tmp_path / "missing" / "x.img", np.zeros((1, 1)), "{\n}\f")
    assert sorted(os.listdir(tmp_path)) == ["out.img"]


def test_float_image_round_trip(tmp_path):
    golden = golden_bytes("sc_smv_pgm", "float.bin.gz")
    image = np.frombuffer(golden, dtype="<f4").reshape(128, 128).astype(np.float64)
    out = tmp_path / "float.bin"
    write_float_image(out, image)
    assert out.read_bytes() == golden
