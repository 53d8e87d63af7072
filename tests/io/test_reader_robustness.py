"""Bad and surprising input files: one clear error, or a warning where the C program goes on."""

import tracemalloc

import numpy as np
import pytest
from io_testdata import INPUTS

import torchbragg.io.hkl as hkl_module
from torchbragg.io.ctext import c_reading
from torchbragg.io.errors import InputFileError
from torchbragg.io.hkl import HKLTable, fdump_bytes, read_fdump, read_hkl
from torchbragg.io.mosflm import read_mosflm_matrix, reciprocal_vectors_from_mosflm
from torchbragg.io.smv import read_smv, smv_header_geometry
from torchbragg.io.sources import apply_source_defaults, read_sources

# numpy RuntimeWarnings (overflow, invalid value) must never reach stderr from a reader
pytestmark = pytest.mark.filterwarnings("error")

IDENTITY_A = "0.01 0 0\n0 0.01 0\n0 0 0.01\n"


def raised(function, *args, **kwargs) -> InputFileError:
    with pytest.raises(InputFileError) as caught:
        function(*args, **kwargs)
    return caught.value


# --- MOSFLM matrix -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "line", "message"),
    [
        ("0.01 0 0\n0 nan 0\n0 0 0.01\n", 2, "A matrix number 5 is 'nan', not a finite number"),
        ("0.01 0 0\n0 0.01 0\n0 0 -inf\n", 3, "A matrix number 9 is '-inf', not a finite number"),
        ("1e999 0 0\n0 0.01 0\n0 0 0.01\n", 1, "A matrix number 1 is '1e999', not a finite number"),
        ("0.01 0 0 0\nNaN 0.01 0 0 0.01\n", 2, "A matrix number 5 is 'NaN', not a finite number"),
    ],
)
def test_matrix_with_nan_or_inf(write_text, text, line, message):
    path = write_text("bad.mat", text)
    error = raised(read_mosflm_matrix, path)
    assert str(error) == f"{path} line {line}: {message}"


@pytest.mark.parametrize(
    ("text", "rank"),
    [
        ("0 0 0\n0 0 0\n0 0 0\n", 0),
        ("0.01 0.01 0.01\n0.02 0.02 0.02\n-0.01 -0.01 -0.01\n", 1),
        ("0.01 0.02 0.03\n0 0 0\n0.04 0.05 0.06\n", 2),  # a zero row
        ("0.01 0.01 0\n0.02 0.02 0\n0.03 0.03 0.01\n", 2),  # a* = b*
        ("0.01 0.02 0.03\n0.04 0.05 0.06\n0.07 0.08 0.09\n", 2),  # c* = 2 b* - a*
        ("1e-300 0 0\n0 1e-300 0\n0 0 0\n", 2),
    ],
)
def test_singular_matrix(write_text, text, rank):
    path = write_text("flat.mat", text)
    error = raised(read_mosflm_matrix, path)
    assert str(error) == (
        f"{path}: the orientation (A) matrix is singular (rank {rank}): its columns a*, b*, c* "
        "must be three independent vectors"
    )


def test_good_matrices_still_read(write_text):
    tiny = write_text("tiny.mat", "1e-300 0 0\n0 1e-300 0\n0 0 1e-300\n")
    assert read_mosflm_matrix(tiny)[2, 2] == 1e-300
    huge = write_text("huge.mat", "1e300 1 0\n0 1e300 0\n0 0 1e300\n")
    assert read_mosflm_matrix(huge)[0, 1] == 1.0
    for name in ("A.mat", "tetragonal.mat"):
        assert np.linalg.matrix_rank(read_mosflm_matrix(INPUTS / name)) == 3


def test_reciprocal_vectors_check_the_matrix():
    error = raised(reciprocal_vectors_from_mosflm, np.zeros((3, 3)), 1.0)
    assert str(error).startswith("<A matrix>: the orientation (A) matrix is singular (rank 0)")
    matrix = np.eye(3) * 0.01
    matrix[1, 1] = np.nan
    error = raised(reciprocal_vectors_from_mosflm, matrix, 1.0, path="x.mat")
    assert str(error) == "x.mat: the A matrix holds a value that is not a finite number"
    error = raised(reciprocal_vectors_from_mosflm, np.eye(3) * 1e300, wavelength_m=1e-300)
    assert "is not finite (lambda too small)" in str(error)


# --- HKL text ----------------------------------------------------------------------------------


@pytest.mark.parametrize("block_bytes", [1, 16, 1 << 20])
@pytest.mark.parametrize(
    ("text", "line", "message"),
    [
        ("1 2 3 4\n1 2 3 nan\n", 2, "structure factor F must be a finite number, got 'nan'"),
        (
            "1 2 3 4\n\n1 2 3 -inf  0.5\n",
            3,
            "structure factor F must be a finite number, got '-inf'",
        ),
        ("1 2 3 1e999\n", 1, "structure factor F must be a finite number, got '1e999'"),
        (
            "1 2 3 4\n1 2 3 Infinity # x\n",
            2,
            "structure factor F must be a finite number, got 'Infinity'",
        ),
        ("1 nan 3 4\n", 1, "Miller index must be an integer, got 'nan'"),
        ("1 2 -inf 4\n", 1, "Miller index must be an integer, got '-inf'"),
        ("1 2 1e999 4\n", 1, "Miller index must be an integer, got '1e999'"),
        # the first bad line wins, whatever it is
        ("1 2 3 4\n1 2 3 x\n1 2 3 nan\n", 2, "expected 4 numbers (h k l F), got '1 2 3 x'"),
        (
            "99999999999 0 0 1\n1 2 3 inf\n",
            2,
            "structure factor F must be a finite number, got 'inf'",
        ),
    ],
)
def test_hkl_nan_and_inf(write_text, monkeypatch, block_bytes, text, line, message):
    monkeypatch.setattr(hkl_module, "BLOCK_BYTES", block_bytes)
    path = write_text("bad.hkl", text)
    error = raised(read_hkl, path)
    assert (error.line, str(error)) == (line, f"{path} line {line}: {message}")


def test_negative_F_kept_with_warning(write_text):
    path = write_text("neg.hkl", "1 2 3 -5\n0 0 0 7\n-1 0 2 -0.25\n2 2 2 -0.0\n")
    table = read_hkl(path)
    assert table.ranges == (-1, 2, 0, 2, 0, 3)
    assert table.F[2, 2, 3] == -5.0
    assert table.F[0, 0, 2] == -0.25
    assert table.warnings == [
        f"{path} line 1: negative F (-5) for 1 2 3; nanoBragg squares F, so it acts as 5 "
        "(but -interpolate uses the sign)",
        f"{path} line 3: negative F (-0.25) for -1 0 2; nanoBragg squares F, so it acts as 0.25 "
        "(but -interpolate uses the sign)",
    ]


def test_many_negative_F_are_counted(write_text):
    path = write_text("negs.hkl", "".join(f"{h} 0 0 -{h + 1}.5\n" for h in range(10)))
    table = read_hkl(path)
    assert len(table.warnings) == 4
    assert table.warnings[2].startswith(f"{path} line 3: negative F (-3.5) for 2 0 0;")
    assert table.warnings[3] == (
        f"{path}: 7 more lines with a negative F; nanoBragg squares F, so each acts as |F|"
    )
    assert table.F.ravel().tolist() == [-(h + 1.5) for h in range(10)]


@pytest.mark.parametrize("block_bytes", [1, 20, 1 << 20])
def test_repeated_reflection_last_wins_with_warning(write_text, monkeypatch, block_bytes):
    monkeypatch.setattr(hkl_module, "BLOCK_BYTES", block_bytes)
    path = write_text(
        "dup.hkl",
        "1 2 3 10\n"
        "0 0 0 1\n"
        "1 2 3 10.0\n"  # same value: no warning
        "1 2 3 11.125\n"
        "0 0 0 1\n"
        "1 2 3 0.1\n",  # the same reflection again: counted, not shown twice
    )
    table = read_hkl(path)
    assert table.n_entries == 6
    assert table.F[1, 2, 3] == 0.1  # the C program fills its grid in file order
    assert table.F[0, 0, 0] == 1.0
    assert table.warnings == [
        f"{path} line 4: 1 2 3 repeats line 3 with a different F (11.125, was 10); nanoBragg "
        "keeps the last value",
        f"{path}: 1 more lines repeat a reflection with a different F; nanoBragg keeps the last "
        "value of each",
    ]


def test_repeat_warnings_show_three_reflections(write_text, monkeypatch):
    monkeypatch.setattr(hkl_module, "BLOCK_BYTES", 64)
    lines = [f"{h} 0 0 {h}\n" for h in range(10)] + [f"{h} 0 0 {h + 0.5}\n" for h in range(10)]
    path = write_text("dups.hkl", "".join(lines))
    table = read_hkl(path)
    assert table.warnings == [
        f"{path} line {11 + h}: {h} 0 0 repeats line {1 + h} with a different F ({h + 0.5:g}, "
        f"was {h}); nanoBragg keeps the last value"
        for h in range(3)
    ] + [
        f"{path}: 7 more lines repeat a reflection with a different F; nanoBragg keeps the last "
        "value of each"
    ]
    assert table.F.ravel().tolist() == [h + 0.5 for h in range(10)]


def test_values_too_close_for_g_are_shown_exactly(write_text):
    path = write_text("close.hkl", "1 1 1 100.0000001\n1 1 1 100.0000002\n")
    assert "(100.0000002, was 100.0000001)" in read_hkl(path).warnings[0]


def test_no_warnings_for_golden_files():
    for name in ("cubic.hkl", "scaled.hkl", "triclinic.hkl"):
        assert read_hkl(INPUTS / name).warnings == []


def test_hkl_table_warnings_default_empty():
    table = HKLTable(0, 0, 0, 0, 0, 0, np.zeros((1, 1, 1)), n_entries=1)
    assert table.warnings == []


def per_line_read(monkeypatch, path, default_F):
    """Read with the numpy block parser switched off: the line-by-line reference."""
    with monkeypatch.context() as patch:
        patch.setattr(hkl_module, "_parse_plain_block", lambda *args: None)
        return read_hkl(path, default_F)


def assert_same_table(a: HKLTable, b: HKLTable):
    assert a.ranges == b.ranges
    assert a.n_entries == b.n_entries
    assert a.F.dtype == b.F.dtype == np.float64
    assert a.F.tobytes() == b.F.tobytes()  # bit for bit, -0.0 and all
    assert a.warnings == b.warnings


def random_hkl_text(rng, n, span, order="random"):
    hkl = rng.integers(-span, span + 1, size=(n, 3))
    if order != "random":
        hkl = hkl[np.lexsort(hkl.T[::-1])]  # by h, then k, then l: the grid grows plane by plane
    if order == "descending":
        hkl = hkl[::-1]
    F = rng.uniform(-10, 3000, n)
    digits = rng.integers(0, 4, n)
    formats = ["{:.2f}", "{!r}", "{:.6e}", "{:.0f}."]
    return "".join(
        f"{h:4d} {k:4d} {l:4d} {formats[d].format(f)}\n"
        for (h, k, l), f, d in zip(hkl.tolist(), F.tolist(), digits.tolist(), strict=True)
    )


@pytest.mark.parametrize("order", ["random", "ascending", "descending"])
def test_streamed_matches_per_line_parser(tmp_path, monkeypatch, order):
    rng = np.random.default_rng(12)
    path = tmp_path / "big.hkl"
    path.write_text(random_hkl_text(rng, 120_000, 15, order))  # about 3 MB
    monkeypatch.setattr(hkl_module, "BLOCK_BYTES", 1 << 16)
    streamed = read_hkl(path, default_F=-0.0)
    assert_same_table(streamed, per_line_read(monkeypatch, path, -0.0))
    assert streamed.n_entries == 120_000
    assert len(streamed.warnings) == 8  # 3 + count of each kind


def test_streamed_mixed_blocks_match(tmp_path, monkeypatch):
    rng = np.random.default_rng(3)
    lines = random_hkl_text(rng, 3000, 6, "ascending").splitlines()
    lines[100] = "# a comment"
    lines[700] = ""
    lines[1500] += " 0.5 0.25 extra"
    lines[2000] = "  2.0  -3  1e0   7.5e1   # comment"
    text = "\r\n".join(lines[:1000]) + "\r\n" + "\n".join(lines[1000:])  # no final newline
    path = tmp_path / "mixed.hkl"
    path.write_text(text)
    reference = per_line_read(monkeypatch, path, 4.0)
    for block_bytes in (1, 100, 4096, 1 << 20):
        monkeypatch.setattr(hkl_module, "BLOCK_BYTES", block_bytes)
        assert_same_table(read_hkl(path, 4.0), reference)


def test_line_longer_than_a_block(write_text, monkeypatch):
    monkeypatch.setattr(hkl_module, "BLOCK_BYTES", 8)
    path = write_text("long.hkl", "1 2 3 4" + " 5" * 100 + "\n-1 0 0 2\n3 3 3 3")
    table = read_hkl(path)
    assert table.n_entries == 3
    assert (table.F[2, 2, 3], table.F[0, 0, 0], table.F[4, 3, 3]) == (4.0, 2.0, 3.0)


def test_streaming_memory_is_bounded(tmp_path, monkeypatch):
    rng = np.random.default_rng(5)
    path = tmp_path / "many.hkl"
    path.write_text(random_hkl_text(rng, 80_000, 8))  # about 2 MB, a 17^3 grid
    monkeypatch.setattr(hkl_module, "BLOCK_BYTES", 1 << 16)
    read_hkl(path)  # warm up imports and caches
    tracemalloc.start()
    try:
        read_hkl(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 1_500_000  # reading the whole file at once took several times its size


def test_errors_after_the_whole_file_is_checked(write_text, monkeypatch):
    monkeypatch.setattr(hkl_module, "BLOCK_BYTES", 4)
    # a bad line is reported before an index range problem found earlier
    path = write_text("late.hkl", "99999999999 0 0 1\n1 2 3 4\n1 2 3\n")
    assert raised(read_hkl, path).line == 3
    path = write_text("wide.hkl", "-2000 0 0 1\n2000 2000 2000 1\n0 0 0 nan\n")
    assert raised(read_hkl, path).line == 3
    error = raised(read_hkl, write_text("wide2.hkl", "-2000 0 0 1\n2000 2000 2000 1\n"))
    assert str(error).endswith("Miller index ranges too large for a dense grid: (4001, 2001, 2001)")


def test_fdump_with_nan_or_inf(tmp_path):
    F = np.arange(24, dtype=np.float64).reshape(2, 3, 4)
    for value, text in ((np.nan, "nan"), (-np.inf, "-inf")):
        bad = F.copy()
        bad[1, 2, 0] = value
        bad[1, 2, 3] = np.inf
        path = tmp_path / "Fdump.bin"
        path.write_bytes(fdump_bytes(HKLTable(-1, 0, 2, 4, -2, 1, bad, n_entries=24)))
        assert str(raised(read_fdump, path)) == (
            f"{path}: structure factor for 0 4 -2 is {text}, not a finite number (and 1 more); "
            "rerun with -hkl to rewrite it"
        )


def test_fdump_padding_may_hold_anything(tmp_path):
    F = np.ones((2, 2, 2))
    data = bytearray(fdump_bytes(HKLTable(0, 1, 0, 1, 0, 1, F, n_entries=8)))
    data[-8:] = np.array([np.nan]).tobytes()  # the last padding cell, never used
    path = tmp_path / "Fdump.bin"
    path.write_bytes(bytes(data))
    assert np.array_equal(read_fdump(path).F, F)


# --- source file -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "line", "message"),
    [
        (
            "-10 0 0 1 1e-10\n-10 inf 0\n",
            2,
            "Y is 'inf', not a finite number (nan takes the default)",
        ),
        (
            "-10 0 0 1 -1e999\n",
            1,
            "wavelength is '-1e999', not a finite number (nan takes the default)",
        ),
        (
            "\n-10 0 0 Infinity\n",
            2,
            "weight is 'Infinity', not a finite number (nan takes the default)",
        ),
        (
            "-10 0 0\n0, 0, -0\n",
            2,
            "source position X Y Z is 0 0 0, which gives no direction "
            "from the sample (nanoBragg would normalise it to NaN)",
        ),
    ],
)
def test_bad_source_values(write_text, text, line, message):
    path = write_text("bad.txt", text)
    error = raised(read_sources, path)
    assert str(error) == f"{path} line {line}: {message}"


def test_source_at_origin_after_defaults(write_text):
    path = write_text("edge.txt", "-10 0 0\n# beam along x: Y and Z default to -0\n0 nan nan\n")
    sources = read_sources(path)
    error = raised(apply_source_defaults, sources, np.array([1.0, 0.0, 0.0]), 1e-10)
    assert str(error) == (
        f"{path} line 3: source position is 0 0 0 once its missing coordinates take their "
        "defaults (-10 m times the beam direction), which gives no direction from the sample"
    )
    # another beam direction gives the same line a direction
    filled = apply_source_defaults(sources, np.array([0.0, 1.0, 0.0]), 1e-10)
    assert filled.position_m[1].tolist() == [0.0, -10.0, -0.0]


def test_negative_weights_warn(write_text):
    path = write_text("neg.txt", "".join(f"-10 0 {i} -{i}.5\n" for i in range(5)) + "-10 0 9 2\n")
    sources = read_sources(path)
    assert sources.weight.tolist() == [-0.5, -1.5, -2.5, -3.5, -4.5, 2.0]
    assert sources.warnings == [
        f"{path} line {i + 1}: negative source weight (-{i}.5); nanoBragg never uses source "
        "weights in the intensity, so this source counts like the others"
        for i in range(3)
    ] + [
        f"{path}: 2 more sources with a negative weight; nanoBragg ignores source weights in "
        "the intensity"
    ]
    filled = apply_source_defaults(sources, np.array([1.0, 0.0, 0.0]), 1e-10)
    assert filled.warnings == sources.warnings
    assert filled.line_numbers.tolist() == [1, 2, 3, 4, 5, 6]
    assert read_sources(INPUTS / "sources.txt").warnings == []


# The C reader's reading of each line was checked against nanoBragg's printout of its sources.
@pytest.mark.parametrize(
    ("line", "columns", "expected"),
    [
        (b"0 0 -10\n", 5, [0.0, 0.0, -10.0, np.nan, np.nan]),
        (b"0 0 -10\r\n", 5, [0.0, 0.0, -10.0, 0.0, 0.0]),
        (b"0.001 0 -10", 5, [0.001, 0.0, -10.0, 0.0, 0.0]),
        (b"# header\n", 5, [0.0] * 5),
        (b"0 0 -10 # comment\n", 5, [0.0, 0.0, -10.0, 0.0, 0.0]),
        (b"\r\n", 5, [0.0] * 5),
        (b"  \t\n", 5, None),
        (b"1,2;3:4!5 6 7\r\n", 5, [1.0, 2.0, 3.0, 4.0, 5.0]),
        (b"1 2 3   \n", 5, [1.0, 2.0, 3.0, np.nan, np.nan]),
    ],
)
def test_c_reading_of_a_line(line, columns, expected):
    got = c_reading(line, columns)
    if expected is None:
        assert got is None
    else:
        np.testing.assert_array_equal(np.array(got), np.array(expected))


@pytest.mark.parametrize(
    ("data", "lines", "why"),
    [
        (b"0 0 -10\r\n0.001 0 -10 1 1e-10\r\n", [1], "carriage return"),
        (b"0 0 -10\n0.001 0 -10", [2], "no newline after its last line"),
        (b"# header\n0 0 -10 1 1e-10 # ok after five\n0 0 -10 # note\n", [1, 3], "'#'"),
    ],
)
def test_lines_nanobragg_reads_otherwise_warn(tmp_path, data, lines, why):
    path = tmp_path / "src.txt"
    path.write_bytes(data)
    sources = read_sources(path)
    assert [w.split(":")[0] for w in sources.warnings] == [f"{path} line {n}" for n in lines]
    assert all(why in w and "torchbragg" in w for w in sources.warnings)
    assert np.isnan(sources.wavelength_m).any()  # read as written: the default wavelength


def test_many_lines_read_otherwise_are_counted(tmp_path):
    path = tmp_path / "src.txt"
    path.write_bytes(b"".join(b"0 %d -10\r\n" % i for i in range(10)))
    warnings = read_sources(path).warnings
    assert len(warnings) == 4
    assert warnings[-1] == f"{path}: 7 more lines that nanoBragg would read differently"


# --- SMV header --------------------------------------------------------------------------------


def header(*entries: str) -> str:
    return "{\nHEADER_BYTES=512;\nSIZE1=4;\nSIZE2=2;\n" + "".join(f"{e}\n" for e in entries) + "}"


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ("PIXEL_SIZE=nan;", "header key PIXEL_SIZE is 'nan', not a finite number"),
        ("WAVELENGTH=inf;", "header key WAVELENGTH is 'inf', not a finite number"),
        ("BEAM_CENTER_X=;", "header key BEAM_CENTER_X is '', not a number"),
        ("BEAM_CENTER_Y=  centre;", "header key BEAM_CENTER_Y is 'centre', not a number"),
        ("PHI=1e999;", "header key PHI is '1e999', not a finite number"),
        ("XDS_ORGX=NaN;", "header key XDS_ORGX (read as ORGX) is 'NaN', not a finite number"),
        (
            "DISTANCE=95;\nCLOSE_DISTANCE=-inf;",
            "header key CLOSE_DISTANCE (read as DISTANCE) is '-inf', not a finite number",
        ),
        (
            "OSC_RANGE",
            "header has OSC_RANGE without '=' and a value on its line (nanoBragg would "
            "read 0 or the next entry's value)",
        ),
    ],
)
def test_bad_geometry_values(entry, message):
    for role in ("img", "mask"):
        error = raised(smv_header_geometry, header(entry), role, path="x.img")
        assert str(error) == f"x.img: {message}"


def test_good_geometry_values_still_read():
    geometry = smv_header_geometry(header("PIXEL_SIZE=0.2mm;", "PHI=-0;"), "img")
    assert geometry["pixel_size_m"] == 0.2 / 1000.0  # atof reads the leading number
    assert geometry["phi0_rad"] == 0.0


@pytest.mark.parametrize(
    ("entries", "message"),
    [
        (
            "HEADER_BYTES=nan;\nSIZE1=2;\nSIZE2=2;",
            "header key HEADER_BYTES is 'nan', not a finite number",
        ),
        ("HEADER_BYTES=abc;\nSIZE1=2;\nSIZE2=2;", "header key HEADER_BYTES is 'abc', not a number"),
        ("HEADER_BYTES=512;\nSIZE1=two;\nSIZE2=2;", "header key SIZE1 is 'two', not a number"),
        (
            "HEADER_BYTES=512;\nSIZE1=2;\nSIZE2=inf;",
            "header key SIZE2 is 'inf', not a finite number",
        ),
        (
            "HEADER_BYTES=512;\nSIZE1=0;\nDETECTOR_DIMENSIONS=nan;",
            "header key DETECTOR_DIMENSIONS is 'nan', not a finite number",
        ),
    ],
)
def test_bad_smv_size_values(write_text, entries, message):
    path = write_text("bad.img", ("{\n" + entries + "\n}").encode().ljust(512, b" ") + bytes(8))
    assert str(raised(read_smv, path)) == f"{path}: {message}"


def test_golden_headers_have_no_complaints():
    for name in ("header.img", "mask.img"):
        image = read_smv(INPUTS / name)
        assert smv_header_geometry(image.header_text, "img", path=INPUTS / name)["size_fast"] == 140
