import numpy as np
import pytest
from io_testdata import INPUTS, golden_stdout

from torchbragg.io.errors import InputFileError
from torchbragg.io.mosflm import read_mosflm_matrix, reciprocal_vectors_from_mosflm


def printed_reciprocal_vectors(case):
    stdout = golden_stdout(case)
    start = stdout.index("reciprocal-space cell vectors (Angstrom^-1):") + 2
    return [line.split(":", 1)[1] for line in stdout[start : start + 3]]


@pytest.mark.parametrize(
    ("name", "case", "wavelength_A"),
    [("tetragonal.mat", "tet_mat", 1.0), ("A.mat", "pilatus_like", 0.976800)],
)
def test_reciprocal_vectors_match_c_printout(name, case, wavelength_A):
    matrix = read_mosflm_matrix(INPUTS / name)
    a_star, b_star, c_star = reciprocal_vectors_from_mosflm(matrix, wavelength_A)
    columns = np.stack([a_star, b_star, c_star], axis=1)
    ours = ["".join(f" {value:11.8f}" for value in row) for row in columns]
    assert ours == printed_reciprocal_vectors(case)


def test_matrix_layout_and_scaling():
    matrix = read_mosflm_matrix(INPUTS / "tetragonal.mat")
    assert matrix.shape == (3, 3)
    assert matrix[0].tolist() == [0.01090741, -0.00673721, 0.00013251]
    a_star, b_star, c_star = reciprocal_vectors_from_mosflm(matrix, 2.0)
    assert a_star.tolist() == (matrix[:, 0] * (1e-10 / (2.0 / 1.0e10))).tolist()
    assert c_star[2] == pytest.approx(0.02623937 / 2.0)
    in_metres = reciprocal_vectors_from_mosflm(matrix, wavelength_m=2.0 / 1.0e10)
    assert np.array_equal(np.stack(in_metres), np.stack([a_star, b_star, c_star]))
    with pytest.raises(ValueError):
        reciprocal_vectors_from_mosflm(matrix, 1.0, wavelength_m=1e-10)


def test_scanf_style_reading(write_text):
    path = write_text(
        "runon.mat",
        " -0.01000000-0.02000000 0.03\n0.04 0.05\n0.06 0.07 0.08 0.09\n"
        "   0.0 0.0 1.0\n  78.0 78.0 37.0 90.0 90.0 90.0\n",
    )
    assert read_mosflm_matrix(path).ravel().tolist() == pytest.approx(
        [-0.01, -0.02, 0.03, 0.04, 0.05, 0.06, 0.07, 0.08, 0.09]
    )


def test_bad_matrix_files(write_text, tmp_path):
    with pytest.raises(InputFileError) as caught:
        read_mosflm_matrix(write_text("short.mat", "1 2 3\n4 5 6\n7 8\n"))
    assert "found only 8" in str(caught.value)
    with pytest.raises(InputFileError) as caught:
        read_mosflm_matrix(write_text("text.mat", "1 2 3\n4 five 6\n7 8 9\n"))
    assert caught.value.line == 2
    assert str(caught.value).endswith(
        "line 2: expected 9 numbers (the A matrix), number 5 is 'five 6'"
    )
    with pytest.raises(InputFileError, match="cannot read file"):
        read_mosflm_matrix(tmp_path / "absent.mat")
    with pytest.raises(ValueError):
        reciprocal_vectors_from_mosflm(np.zeros((2, 3)), 1.0)
