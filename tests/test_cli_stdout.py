"""What a run prints and which files it writes are the C nanoBragg's.

Both programs print with C's ``%g`` (6 significant digits), so the key summary lines of a run
must be identical strings: the beam and detector geometry, the unit cell, the image statistics
and scales, and the noise summary. A run that names no output files writes nanoBragg's
defaults (floatimage.bin, intimage.img, image.pgm, noiseimage.img) in the working folder.
"""

from __future__ import annotations

import pytest

from golden_cases import golden_stdout, image_files, lines_with, run_case, run_main, smv_pixels

CASES = ["sc_smv_pgm", "conv_xds", "rot_twotheta_sample", "custom_vectors", "misset_random",
         "mosaic", "noise", "sourcefile"]

# lines every run prints
ALWAYS = ["max_I = ", "mean= ", "intfile_scale = ", "Unit Cell:", "XDS incident beam:",
          "  Fbeam=", "  Fclose=", "  DIRECTION_OF_DETECTOR_X-AXIS=", "solid angle subtended"]
# printed only when a PGM is written
WHERE_PRESENT = ["pgm_scale = "]
ANYWHERE = ["photons on noise image"]  # the line starts with the photon count


@pytest.fixture(scope="module", params=CASES)
def printed(request, tmp_path_factory):
    workdir = tmp_path_factory.mktemp(request.param)
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(workdir)
        run = run_case(request.param, workdir)
    assert run.results[-1].status == 0, run.results[-1].stderr
    return request.param, run.stdout, golden_stdout(request.param)


@pytest.mark.parametrize("prefix", ALWAYS)
def test_key_line_matches_c_program(printed, prefix):
    case_id, ours, c_text = printed
    expected = lines_with(c_text, prefix)
    assert expected, f"the C program printed no line starting {prefix!r} for {case_id}"
    assert lines_with(ours, prefix) == expected


@pytest.mark.parametrize("prefix", WHERE_PRESENT)
def test_optional_line_matches_c_program(printed, prefix):
    _, ours, c_text = printed
    assert lines_with(ours, prefix) == lines_with(c_text, prefix)


@pytest.mark.parametrize("marker", ANYWHERE)
def test_noise_summary_matches_c_program(printed, marker):
    _, ours, c_text = printed
    assert lines_with(ours, marker, anywhere=True) == lines_with(c_text, marker, anywhere=True)


# --- the files a run writes when none are named -----------------------------------------

SMALL = ["-cell", "100", "100", "100", "90", "90", "90", "-default_F", "100", "-lambda", "6.2",
         "-N", "5", "-distance", "100", "-pixel", "0.1", "-detpixels", "32", "-noprogress"]


def test_default_output_files_are_written(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = run_main(SMALL)
    assert result.status == 0, result.stderr
    assert image_files(tmp_path) == ["floatimage.bin", "image.pgm", "intimage.img",
                                     "noiseimage.img"]
    assert (tmp_path / "floatimage.bin").stat().st_size == 32 * 32 * 4
    for name in ("intimage.img", "noiseimage.img"):
        assert smv_pixels((tmp_path / name).read_bytes()).size == 32 * 32
    assert (tmp_path / "image.pgm").read_bytes().startswith(b"P5")
    for name in ("floatimage.bin", "intimage.img", "image.pgm", "noiseimage.img"):
        assert f"writing {name} as" in result.stdout


def test_nonoise_and_nopgm_leave_float_and_int_images(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = run_main(SMALL + ["-nonoise", "-nopgm"])
    assert result.status == 0, result.stderr
    assert image_files(tmp_path) == ["floatimage.bin", "intimage.img"]


def test_detpixels_0_means_not_given(tmp_path, monkeypatch):
    # as in nanoBragg: the default 102.4 mm detector, here in 0.8 mm pixels: 128 x 128
    monkeypatch.chdir(tmp_path)
    result = run_main(SMALL + ["-detpixels", "0", "-pixel", "0.8", "-nonoise", "-nopgm"])
    assert result.status == 0, result.stderr
    assert (tmp_path / "floatimage.bin").stat().st_size == 128 * 128 * 4
