"""-printout_pixel reports the last step's values exactly as the C program prints them."""

from __future__ import annotations

from golden_cases import run_main

ARGS = ("-cell 70 80 90 75 85 95 -default_F 10 -lambda 1.0 -N 5 -distance 100 -pixel 0.1 "
        "-misset 10.5 -20.25 30.75 -detpixels 64 -oversample 2 -nonoise -nopgm").split()

# printed by the C nanoBragg (bl831, 8-10-25) for the command above with -printout_pixel 40 30
C_LINES = """\
  40   30 : stol = 4.0349e+07 or 0.0040349
at 0.1 0.000225 0.000775
hkl= 0.272577 0.377560 0.577046  hkl0= 0 0 1
 F_cell=10  F_latt=0.162798   I = 42.0804
I/steps     10.52009632
polar      0.9999699393
omega   9.999098193e-07
capfrac               1
pixel     1.0518831e-05
real-space cell vectors (Angstrom):
{header}
X: 59.07547315 -47.16082259 -17.93686848
Y: 24.75919842 55.98897256 -29.75564738
Z: 28.23243818 32.26595364 83.02331118""".format(header="     a           b           c" + " " * 9
                                                  ).splitlines()


def test_printout_pixel_matches_c_program(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = run_main(ARGS + ["-printout_pixel", "40", "30"])
    assert result.status == 0
    lines = result.stdout.splitlines()
    start = lines.index(C_LINES[0])
    assert lines[start:start + len(C_LINES)] == C_LINES


def test_printout_turns_off_the_progress_meter(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = run_main(ARGS + ["-printout_pixel", "40", "30"])
    assert "% done" not in result.stdout
    assert "% done" in run_main(ARGS).stdout
