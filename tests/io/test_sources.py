import numpy as np
import pytest
from io_testdata import INPUTS, golden_stdout

from torchbragg.io.errors import InputFileError
from torchbragg.io.images import format_c_g
from torchbragg.io.sources import apply_source_defaults, read_sources

MOSFLM_BEAM = np.array([1.0, 0.0, 0.0])


def test_golden_sources_file():
    sources = read_sources(INPUTS / "sources.txt")
    assert len(sources) == 3
    assert sources.position_m.tolist() == [[-10, 0, 0], [-10, 0.002, 0], [-10, 0, -0.002]]
    assert sources.weight.tolist() == [1.0, 0.5, 2.0]
    assert sources.wavelength_m.tolist() == [6.2e-10] * 3
    # the C program lists them as "X Y Z   weight wavelength"
    filled = apply_source_defaults(sources, MOSFLM_BEAM, 6.2e-10)
    stdout = golden_stdout("sourcefile")
    start = stdout.index("  created a total of 3 sources:") + 1
    for row, line in enumerate(stdout[start : start + 3]):
        x, y, z = (format_c_g(v) for v in filled.position_m[row])
        weight = format_c_g(filled.weight[row])
        wavelength = format_c_g(filled.wavelength_m[row])
        assert line == f"{x} {y} {z}   {weight} {wavelength}"


def test_missing_columns_get_defaults(write_text):
    path = write_text(
        "partial.txt",
        "\n".join(
            [
                "# X Y Z weight lambda",
                "",
                "-5",
                "-5, 1; 2",
                "  nan 0.1 nan 3 1e-10 99 extra\r",
                "1:2!3 4\t5e-10",
            ]
        ),
    )
    sources = read_sources(path)
    assert len(sources) == 4
    assert np.isnan(sources.position_m[0, 1])
    beam = np.array([0.0, 0.6, 0.8])
    filled = apply_source_defaults(sources, beam, 1.5e-10)
    assert filled.position_m.tolist() == [
        [-5.0, -6.0, -8.0],
        [-5.0, 1.0, 2.0],
        [-0.0, 0.1, -8.0],
        [1.0, 2.0, 3.0],
    ]
    assert filled.weight.tolist() == [1.0, 1.0, 3.0, 4.0]
    assert filled.wavelength_m.tolist() == [1.5e-10, 1.5e-10, 1e-10, 5e-10]
    # defaults scale with the source distance
    far = apply_source_defaults(sources, beam, 1.5e-10, source_distance_m=20.0)
    assert far.position_m[0].tolist() == [-5.0, -12.0, -16.0]


def test_malformed_line_reports_line_number(write_text):
    path = write_text("bad.txt", "-10 0 0 1 1e-10\n\n-10 zero 0\n")
    with pytest.raises(InputFileError) as caught:
        read_sources(path)
    assert caught.value.line == 3
    assert str(caught.value) == (
        f"{path} line 3: expected up to 5 numbers (X Y Z weight wavelength), got '-10 zero 0'"
    )


def test_empty_or_missing_source_file(write_text, tmp_path):
    with pytest.raises(InputFileError, match="no sources"):
        read_sources(write_text("empty.txt", "\n  \n# nothing\n"))
    with pytest.raises(InputFileError, match="cannot read file"):
        read_sources(tmp_path / "absent.txt")
