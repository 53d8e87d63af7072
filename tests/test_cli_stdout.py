"""The numbers torchbragg prints are the C nanoBragg's, to the digit.

Both programs print with C's ``%g`` (6 significant digits), so the key summary lines of a run
must be identical strings: the beam and detector geometry, the unit cell, the image statistics
and scales, and the noise summary.
"""

from __future__ import annotations

import pytest
from golden_cases import golden_stdout, lines_with, run_case

CASES = ["sc_smv_pgm", "conv_xds", "rot_twotheta_sample", "custom_vectors", "misset_random",
         "mosaic", "noise", "sourcefile"]

# lines every run prints
ALWAYS = ["max_I = ", "mean= ", "intfile_scale = ", "Unit Cell:", "XDS incident beam:",
          "  Fbeam=", "  Fclose=", "  DIRECTION_OF_DETECTOR_X-AXIS=", "solid angle subtended"]
# lines printed only when a PGM or a noise image is written
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
