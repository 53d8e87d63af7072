"""Output files in awkward places and images with awkward values.

Files are written whole or not at all, through symbolic links and straight into devices and
pipes as the C program does; SIGTERM leaves no temporary file; every write error names the
file the user gave. Pixels an integer image cannot hold come out as nanoBragg writes them,
with a warning line instead of a numpy RuntimeWarning.
"""

from __future__ import annotations

import errno
import os
import signal
import stat
import subprocess
import sys
import textwrap
import threading
import warnings

import numpy as np
import pytest

from torchbragg.io import images
from torchbragg.io.images import (
    Terminated,
    image_statistics,
    int_image,
    pgm_image,
    write_atomic,
    write_float_image,
)
from torchbragg.io.pgm import write_pgm


def leftovers(folder) -> list[str]:
    return sorted(name for name in os.listdir(folder) if name.endswith(".tmp"))


# --- symbolic links, devices, pipes ------------------------------------------------------


def test_symlink_is_written_through_and_stays_a_link(tmp_path):
    target = tmp_path / "real" / "f.bin"
    target.parent.mkdir()
    target.write_bytes(b"old")
    target.chmod(0o640)
    link = tmp_path / "link.bin"
    link.symlink_to(target)
    write_atomic(link, [b"new ", b"content"])
    assert link.is_symlink() and os.readlink(link) == str(target)
    assert target.read_bytes() == b"new content"
    assert stat.S_IMODE(target.stat().st_mode) == 0o640  # the replaced file's mode is kept
    assert leftovers(tmp_path) == [] and leftovers(target.parent) == []


def test_chain_of_links_and_dangling_link(tmp_path):
    target = tmp_path / "f.bin"
    (tmp_path / "a").symlink_to(tmp_path / "b")
    (tmp_path / "b").symlink_to(target)  # dangling: the target is created, as fopen does
    write_atomic(tmp_path / "a", [b"x"])
    assert target.read_bytes() == b"x"
    assert (tmp_path / "a").is_symlink() and (tmp_path / "b").is_symlink()


def test_dev_null_stays_a_device():
    write_float_image("/dev/null", np.ones((4, 4)))
    assert stat.S_ISCHR(os.stat("/dev/null").st_mode)
    assert leftovers("/dev") == []


def test_link_to_dev_null_is_written_through(tmp_path):
    link = tmp_path / "out.img"
    link.symlink_to("/dev/null")
    write_pgm(link, np.zeros((2, 2), dtype=np.uint8), 1.0)
    assert link.is_symlink() and stat.S_ISCHR(os.stat("/dev/null").st_mode)


def test_fifo_receives_the_bytes(tmp_path):
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    received = []
    reader = threading.Thread(target=lambda: received.append(fifo.read_bytes()))
    reader.start()
    payload = bytes(range(256)) * 1000  # more than a pipe buffer
    write_atomic(fifo, [payload[:1000], payload[1000:]])
    reader.join(timeout=10)
    assert received == [payload]
    assert stat.S_ISFIFO(os.stat(fifo).st_mode)
    assert sorted(os.listdir(tmp_path)) == ["pipe"]


# --- errors name the file -----------------------------------------------------------------


def failing_chunks(code: int):
    yield b"some bytes"
    raise OSError(code, os.strerror(code))


@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EDQUOT, errno.EIO])
def test_error_while_writing_names_the_file_and_leaves_nothing(tmp_path, code):
    path = tmp_path / "f.bin"
    path.write_bytes(b"old")
    with pytest.raises(OSError) as caught:
        write_atomic(path, failing_chunks(code))
    assert caught.value.errno == code
    assert str(caught.value.strerror) == f"cannot write {path}: {os.strerror(code)}"
    assert path.read_bytes() == b"old"
    assert leftovers(tmp_path) == []


def test_dev_full_names_the_file():
    if not os.path.exists("/dev/full"):
        pytest.skip("no /dev/full")
    with pytest.raises(OSError) as caught:
        write_float_image("/dev/full", np.ones((64, 64)))
    assert caught.value.errno == errno.ENOSPC
    assert caught.value.strerror == "cannot write /dev/full: No space left on device"
    assert stat.S_ISCHR(os.stat("/dev/full").st_mode)


def test_link_to_dev_full_names_the_link(tmp_path):
    if not os.path.exists("/dev/full"):
        pytest.skip("no /dev/full")
    link = tmp_path / "f.bin"
    link.symlink_to("/dev/full")
    with pytest.raises(OSError, match=f"cannot write {link}: No space left"):
        write_atomic(link, [b"x"])


@pytest.mark.parametrize("code", [errno.EROFS, errno.EACCES, errno.EXDEV])
def test_error_while_renaming_names_the_file(tmp_path, monkeypatch, code):
    def refuse(source, destination):
        raise OSError(code, os.strerror(code), source)

    monkeypatch.setattr(images.os, "replace", refuse)
    path = tmp_path / "i.img"
    with pytest.raises(OSError) as caught:
        write_atomic(path, [b"x"])
    assert caught.value.errno == code
    assert caught.value.strerror == f"cannot write {path}: {os.strerror(code)}"
    assert ".tmp" not in str(caught.value)
    assert os.listdir(tmp_path) == []


def test_folder_as_output_is_refused_by_name(tmp_path):
    with pytest.raises(IsADirectoryError) as caught:
        write_atomic(tmp_path, [b"x"])
    assert caught.value.strerror == f"cannot write {tmp_path}: Is a directory"
    assert os.listdir(tmp_path) == []


def test_missing_folder_and_unwritable_folder_name_the_file(tmp_path):
    path = tmp_path / "nodir" / "f.bin"
    with pytest.raises(FileNotFoundError, match=f"cannot write {path}: No such file"):
        write_atomic(path, [b"x"])
    if os.geteuid() == 0:
        return  # root writes anywhere
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    with pytest.raises(PermissionError, match=f"cannot write {locked / 'f.bin'}: Permission"):
        write_atomic(locked / "f.bin", [b"x"])


def test_socket_is_refused_by_name(tmp_path):
    import socket

    path = tmp_path / "s.sock"
    with socket.socket(socket.AF_UNIX) as server:
        server.bind(str(path))
        with pytest.raises(OSError, match=f"cannot write {path}: "):
            write_atomic(path, [b"x"])
    assert stat.S_ISSOCK(os.stat(path).st_mode)


def test_other_errors_pass_unchanged(tmp_path):
    def broken():
        yield b"x"
        raise ValueError("bad chunk")

    with pytest.raises(ValueError, match="bad chunk"):
        write_atomic(tmp_path / "f.bin", broken())
    assert os.listdir(tmp_path) == []


# --- SIGTERM -------------------------------------------------------------------------------

SIGTERM_SCRIPT = textwrap.dedent("""
    import os, signal, sys
    from torchbragg.io.images import Terminated, write_atomic

    def chunks():
        for i in range(64):
            if i == 20:
                os.kill(os.getpid(), signal.SIGTERM)
            yield bytes(1 << 20)

    try:
        write_atomic(sys.argv[1], chunks())
    except Terminated as err:
        assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL
        print(err)
        sys.exit(143)
    sys.exit(0)
""")


def test_sigterm_while_writing_leaves_no_temporary_file(tmp_path):
    path = tmp_path / "big.bin"
    result = subprocess.run([sys.executable, "-c", SIGTERM_SCRIPT, str(path)],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 143, result.stderr
    assert result.stdout.strip() == f"terminated by SIGTERM while writing {path}"
    assert os.listdir(tmp_path) == []


def test_sigterm_handler_is_restored_and_others_are_left_alone(tmp_path):
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL
    seen = []

    def chunks():
        seen.append(signal.getsignal(signal.SIGTERM))
        yield b"x"

    write_atomic(tmp_path / "a", chunks())
    assert callable(seen[0]) and signal.getsignal(signal.SIGTERM) is signal.SIG_DFL
    previous = signal.signal(signal.SIGTERM, signal.SIG_IGN)
    try:
        write_atomic(tmp_path / "b", chunks())
        assert seen[1] is signal.SIG_IGN  # an ignored SIGTERM stays ignored
    finally:
        signal.signal(signal.SIGTERM, previous)


def test_terminated_is_not_an_exception():
    assert issubclass(Terminated, BaseException) and not issubclass(Terminated, Exception)
    assert "Terminated" in images.__all__


def test_writing_from_another_thread_works(tmp_path):
    errors = []

    def write():
        try:
            write_atomic(tmp_path / "t.bin", [b"abc"])
        except BaseException as err:  # noqa: BLE001
            errors.append(err)

    worker = threading.Thread(target=write)
    worker.start()
    worker.join()
    assert errors == [] and (tmp_path / "t.bin").read_bytes() == b"abc"


# --- integer images: nanoBragg's bytes, and a warning -------------------------------------


@pytest.fixture
def strict():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        yield


def test_int_image_clips_at_65535_and_says_so(strict):
    image = np.array([[0.0, 1000.0], [70000.0, 1e30]])
    result = int_image(image, scale=1.0, adc_offset=40.0)
    assert result.pixels.tolist() == [[40, 1040], [65535, 65535]]
    assert (result.clipped, result.invalid) == (2, 0)
    assert result.warnings("int.img") == [
        "int.img: 2 pixels exceed 65535 after scaling and are clipped, as nanoBragg does; "
        "lower -scale"]


def test_int_image_of_inf_and_nan(strict):
    image = np.array([[np.inf, -np.inf], [np.nan, 1.0]])
    result = int_image(image, scale=2.0, adc_offset=0.0)
    assert result.pixels.tolist() == [[65535, 0], [0, 2]]
    assert (result.clipped, result.invalid) == (1, 1)
    # an inf maximum makes the automatic scale 0, and inf * 0 is NaN: written as 0
    auto = int_image(np.array([[np.inf, 5.0]]))
    assert auto.scale == 0.0 and auto.pixels.tolist() == [[0, 40]]
    assert auto.warnings("i.img") == [
        "i.img: 1 pixels are NaN after scaling (inf or NaN in the float image) and are "
        "written as 0, as nanoBragg does"]


def test_int_image_warnings_count_only_the_roi(strict):
    image = np.full((4, 4), 1e6)
    result = int_image(image, scale=1.0, roi=(0, 1, 0, 0))
    assert result.clipped == 2 and int(result.pixels.sum()) == 2 * 65535


def test_ordinary_int_image_has_no_warning(strict):
    image = np.linspace(0.0, 100.0, 64).reshape(8, 8)
    assert int_image(image, adc_offset=-3.0).warnings("i.img") == []


def test_pgm_wraps_negatives_and_zeroes_nan_and_says_so(strict):
    image = np.array([[-1.5, -0.5, 300.0, np.nan, -1e12, -np.inf, np.inf]])
    result = pgm_image(image, pgm_scale=1.0)
    assert result.pixels.tolist() == [[255, 0, 255, 0, 0, 0, 255]]
    assert (result.clipped, result.wrapped, result.invalid) == (2, 3, 1)
    assert result.warnings("image.pgm") == [
        "image.pgm: 3 pixels are negative after scaling and wrap around to arbitrary grey "
        "levels, as nanoBragg does",
        "image.pgm: 1 pixels are NaN after scaling and are written as 0, as nanoBragg does"]


def test_pgm_saturation_is_not_a_warning(strict):
    assert pgm_image(np.array([[1000.0, 2.0]]), pgm_scale=1.0).warnings("p.pgm") == []


def test_float_image_reports_inf_and_nan(tmp_path, strict):
    notes: list[str] = []
    write_float_image(tmp_path / "f.bin", np.array([[1e300, np.nan], [1.0, 2.0]]), notes)
    data = np.fromfile(tmp_path / "f.bin", dtype="<f4")
    assert np.isinf(data[0]) and np.isnan(data[1])
    assert notes == [f"{tmp_path / 'f.bin'}: 2 pixels are inf or NaN (float32 overflows above "
                     "3.4e38) and are written as such, as nanoBragg does"]
    write_float_image(tmp_path / "g.bin", np.ones((2, 2)), notes)
    assert len(notes) == 1


# --- statistics ---------------------------------------------------------------------------


@pytest.mark.parametrize("image", [
    pytest.param(np.array([[np.inf, 1.0], [2.0, 3.0]]), id="inf"),
    pytest.param(np.array([[np.inf, -np.inf], [2.0, 3.0]]), id="both_infs"),
    pytest.param(np.array([[np.nan, 1.0], [2.0, 3.0]]), id="nan"),
    pytest.param(np.full((3, 3), 3e38), id="squares_overflow"),
    pytest.param(np.full((3, 3), 1e300), id="beyond_float32"),
])
def test_statistics_of_awkward_images_warn_nothing(image, strict):
    stats = image_statistics(image)
    int_image(image, max_I=stats.max_I)
    pgm_image(image, rmsd=stats.rmsd)


def test_statistics_of_inf_image_match_c_semantics(strict):
    stats = image_statistics(np.array([[1.0, np.inf], [np.inf, 2.0]]))
    assert stats.max_I == np.inf and stats.max_pixel == (0, 1)  # the first maximum
    assert stats.mean == np.inf and stats.rms == np.inf and np.isnan(stats.rmsd)


# --- the command line -------------------------------------------------------------------

CLI = ["-cell", "100", "100", "100", "90", "90", "90", "-lambda", "1", "-N", "5",
       "-distance", "100", "-detpixels", "32", "-noprogress", "-floatfile", "f.bin",
       "-intfile", "i.img"]


def run_cli(tmp_path, extra):
    return subprocess.run([sys.executable, "-m", "torchbragg", *CLI, *extra],
                          capture_output=True, text=True, cwd=tmp_path, timeout=300)


def test_huge_structure_factors_give_warning_lines_not_numpy_warnings(tmp_path):
    result = run_cli(tmp_path, ["-default_F", "1e30", "-nopgm", "-nonoise"])
    assert result.returncode == 0, result.stderr
    for word in ("RuntimeWarning", "encountered", "Traceback"):  # numpy's wording
        assert word not in result.stderr, result.stderr
    assert "torchbragg: warning: i.img: 1024 pixels are NaN after scaling" in result.stderr
    assert "max_I = inf" in result.stdout


def test_scale_too_large_warns_once_per_file(tmp_path):
    result = run_cli(tmp_path, ["-default_F", "100", "-scale", "1e12", "-nonoise",
                                "-pgmfile", "p.pgm"])
    assert result.returncode == 0, result.stderr
    lines = [line for line in result.stderr.splitlines() if "i.img" in line]
    assert len(lines) == 1 and "exceed 65535 after scaling" in lines[0], result.stderr
    assert "p.pgm" not in result.stderr  # PGM saturation is normal


@pytest.mark.skipif(not os.access("/dev", os.W_OK),
                    reason="the command line's early check wants the output's folder writable")
def test_floatfile_dev_null_stays_a_device(tmp_path):
    result = run_cli(tmp_path, ["-default_F", "100", "-nopgm", "-nonoise",
                                "-floatfile", "/dev/null"])
    assert result.returncode == 0, result.stderr
    assert stat.S_ISCHR(os.stat("/dev/null").st_mode)
    assert sorted(os.listdir(tmp_path)) == ["i.img"]


def test_dev_stdout_to_a_pipe_is_written_directly(tmp_path):
    script = ("import sys; from torchbragg.io.images import write_atomic; "
              "write_atomic('/dev/stdout', [b'through ', b'the pipe'])")
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout == b"through the pipe"


def test_symlink_loop_is_named(tmp_path):
    loop = tmp_path / "loop"
    loop.symlink_to(loop)
    with pytest.raises(OSError, match=f"cannot write {loop}: Too many levels"):
        write_atomic(loop, [b"x"])


def test_noise_warnings():
    from torchbragg.cli.outputs import noise_warnings
    from torchbragg.rng import NoiseImage

    floats = np.array([[0.0, 2.0, np.inf], [1e6, 5.0, 1.0]], dtype=np.float32)
    noisy = NoiseImage(np.array([[65533, 65534, 65535], [65535, 2, 0]], dtype=np.uint16), 2,
                       1e6)
    assert noise_warnings("n.img", floats, noisy, -3.0, None) == [
        "n.img: 2 pixels exceed 65535 after adding noise and are clipped, as nanoBragg does "
        "(-scale does not apply to noise)",
        "n.img: 1 pixels are inf or NaN in the float image and get no noise value (written as "
        "65535 or 0, as nanoBragg does)",
        "n.img: 2 pixels fall below 0 with the negative -adc and wrap around to near 65535, "
        "as nanoBragg does"]
    assert noise_warnings("n.img", floats, noisy._replace(overloads=0), 40.0, (0, 1, 0, 1)) == []
