import numpy as np
import pytest
from io_testdata import C_RUNS, INPUTS, golden_stdout, read_maybe_gz

from torchbragg.io.errors import InputFileError
from torchbragg.io.hkl import HKLTable, fdump_bytes, read_fdump, read_hkl, write_fdump


def test_cubic_ranges_and_values():
    table = read_hkl(INPUTS / "cubic.hkl")
    assert table.ranges == (-6, 6, -6, 6, -6, 6)
    assert table.F.shape == (13, 13, 13)
    assert table.F.dtype == np.float64
    assert table.n_entries == 2197
    assert table.F[0, 0, 0] == 18.01  # -6 -6 -6
    assert table.F[0, 0, 1] == 74.84  # -6 -6 -5


def test_extra_columns_give_same_F():
    plain = read_hkl(INPUTS / "cubic.hkl", default_F=3.0)
    extended = read_hkl(INPUTS / "cubic_sigphase.hkl", default_F=3.0)
    assert extended.ranges == plain.ranges
    assert extended.n_entries == plain.n_entries
    assert np.array_equal(extended.F, plain.F)


def test_missing_reflections_hold_default_F():
    table = read_hkl(INPUTS / "triclinic.hkl", default_F=10.0)
    listed = np.zeros(table.F.shape, dtype=bool)
    for line in (INPUTS / "triclinic.hkl").read_text().splitlines():
        indices = [int(token) + 8 for token in line.split()[:3]]
        listed[tuple(indices)] = True
    assert table.n_entries == listed.sum() == 4133
    assert np.all(table.F[~listed] == 10.0)
    # the C program reports the same count
    assert "  4133 initialized hkls (all others =10)" in golden_stdout("tri_misset")


def test_zero_default_and_negative_zero_default(write_text):
    path = write_text("two.hkl", "0 0 0 5\n1 1 1 7\n")
    for default in (0.0, -0.0):
        table = read_hkl(path, default_F=default)
        assert table.F[0, 1, 0] == 0.0
        assert not np.signbit(table.F[0, 1, 0])


def test_comments_blanks_duplicates_and_formats(write_text):
    path = write_text(
        "mixed.hkl",
        "# header comment\n"
        "\n"
        "  1  2  3   10.5   0.3  45.0\r\n"
        "-1 -2 -3 2e1 # trailing comment\n"
        "\t1\t2\t3\t11.5\n"  # repeat: the last one wins, as in the C program
        "1.0 0 0 7e0\n",
    )
    table = read_hkl(path, default_F=1.0)
    assert table.ranges == (-1, 1, -2, 2, -3, 3)
    assert table.n_entries == 4
    assert table.F[2, 4, 6] == 11.5
    assert table.F[0, 0, 0] == 20.0
    assert table.F[2, 2, 3] == 7.0
    assert table.F[1, 1, 1] == 1.0
    assert table.warnings == [
        f"{path} line 5: 1 2 3 repeats line 3 with a different F (11.5, was 10.5); "
        "nanoBragg keeps the last value"
    ]


@pytest.mark.parametrize(
    ("text", "line", "message"),
    [
        ("1 2 3 4\n1 2 abc 4\n", 2, "expected 4 numbers (h k l F), got '1 2 abc 4'"),
        ("# only\n\n1 2 3\n", 3, "expected 4 numbers (h k l F), got '1 2 3'"),
        ("1 2 3 4x\n", 1, "expected 4 numbers (h k l F), got '1 2 3 4x'"),
        ("1 2.5 3 4\n", 1, "Miller index must be an integer, got '2.5'"),
        ("1 inf 3 4\n", 1, "Miller index must be an integer, got 'inf'"),
    ],
)
def test_malformed_lines(write_text, text, line, message):
    path = write_text("bad.hkl", text)
    with pytest.raises(InputFileError) as caught:
        read_hkl(path)
    assert caught.value.line == line
    assert caught.value.path == str(path)
    assert str(caught.value) == f"{path} line {line}: {message}"


def test_huge_index_and_range(write_text):
    with pytest.raises(InputFileError, match="32-bit"):
        read_hkl(write_text("huge.hkl", "99999999999999999999 0 0 1\n"))
    with pytest.raises(InputFileError, match="too large"):
        read_hkl(write_text("wide.hkl", "-2000 0 0 1\n2000 2000 2000 1\n"))


def test_empty_and_missing_files(write_text, tmp_path):
    with pytest.raises(InputFileError, match="no reflections"):
        read_hkl(write_text("empty.hkl", "# nothing\n\n"))
    with pytest.raises(InputFileError, match="cannot read file"):
        read_hkl(tmp_path / "absent.hkl")
    with pytest.raises(InputFileError, match="cannot read file"):
        read_hkl(tmp_path)


def test_input_file_error_is_value_error():
    error = InputFileError("x.hkl", "bad", 3)
    assert isinstance(error, ValueError)
    assert str(error) == "x.hkl line 3: bad"
    assert str(InputFileError("x.bin", "truncated")) == "x.bin: truncated"


@pytest.mark.parametrize(
    ("hkl_name", "default_F", "dump_name"),
    [
        ("triclinic.hkl", 10.0, "triclinic_default_F_10.Fdump.bin.gz"),
        ("tetragonal.hkl", 0.0, "tetragonal.Fdump.bin.gz"),
    ],
)
def test_fdump_matches_c_program(tmp_path, hkl_name, default_F, dump_name):
    c_bytes = read_maybe_gz(C_RUNS / "fdump" / dump_name)
    table = read_hkl(INPUTS / hkl_name, default_F=default_F)

    # writing reproduces the C file byte for byte
    assert fdump_bytes(table) == c_bytes
    out = tmp_path / "Fdump.bin"
    write_fdump(out, table)
    assert out.read_bytes() == c_bytes

    # reading the C file gives the same grid
    c_file = tmp_path / "from_c.bin"
    c_file.write_bytes(c_bytes)
    cached = read_fdump(c_file)
    assert cached.ranges == table.ranges
    assert np.array_equal(cached.F, table.F)
    assert cached.n_entries == table.F.size


def test_fdump_layout_and_round_trip(tmp_path):
    F = np.arange(2 * 3 * 4, dtype=np.float64).reshape(2, 3, 4) - 7.25
    table = HKLTable(-1, 0, 2, 4, -2, 1, F, n_entries=5)
    path = tmp_path / "Fdump.bin"
    write_fdump(path, table)
    data = path.read_bytes()
    header = b"-1 0 2 4 -2 1\n\f"
    assert data.startswith(header)
    grid = np.frombuffer(data[len(header) :], dtype="<f8").reshape(3, 4, 5)
    assert np.array_equal(grid[:2, :3, :4], F)
    assert np.count_nonzero(grid) == np.count_nonzero(F)  # padding planes are zero
    back = read_fdump(path)
    assert back.ranges == table.ranges
    assert np.array_equal(back.F, F)
    assert back.n_entries == 24


def test_fdump_count_as_c_prints():
    # the C program's second run of case "fdump" reads a -8..8 cube from Fdump.bin
    assert "  4913 initialized hkls (all others =10)" in golden_stdout("fdump")
    table = read_hkl(INPUTS / "triclinic.hkl", default_F=10.0)
    assert table.F.size == 4913


def test_bad_fdump_files(tmp_path, write_text):
    table = read_hkl(INPUTS / "cubic.hkl")
    good = fdump_bytes(table)
    with pytest.raises(InputFileError, match="needs"):
        read_fdump(write_text("short.bin", good[:-8]))
    with pytest.raises(InputFileError, match="needs"):
        read_fdump(write_text("long.bin", good + b"\0" * 8))
    with pytest.raises(InputFileError, match="not a structure-factor dump"):
        read_fdump(write_text("text.bin", "hello\n\f"))
    with pytest.raises(InputFileError, match="empty index range"):
        read_fdump(write_text("empty.bin", b"1 0 0 0 0 0\n\f"))
    with pytest.raises(InputFileError, match="cannot read file"):
        read_fdump(tmp_path / "absent.bin")
