"""Command-line behaviours of part 2: random orientation, extended HKL files, unused options."""

from __future__ import annotations

import gzip

import numpy as np

from golden_cases import GOLDEN, link_inputs, run_main

TRICLINIC = ("-cell 70 80 90 75 85 95 -default_F 10 -lambda 1.0 -N 5 -distance 100 "
             "-pixel 0.1 -detpixels 32 -nonoise -nopgm -noprogress").split()


def test_misset_random_prints_the_c_programs_angles(tmp_path, monkeypatch):
    # -misset_seed before -misset random (after it, it would also match -misset and set angles)
    monkeypatch.chdir(tmp_path)
    result = run_main(TRICLINIC + ["-misset_seed", "31337", "-misset", "random",
                                   "-floatfile", "f.bin"])
    assert result.status == 0
    # printed by the C nanoBragg for the same command line
    assert "random orientation misset angles: 32.614739 4.858796 -22.249522 deg" in \
        result.stdout
    assert "X: 60.17976585 25.06440539 -12.42454018" in result.stdout
    image = np.fromfile(tmp_path / "f.bin", dtype=np.float32)
    assert abs(image.sum() / 11.614565 - 1) < 1e-6  # the C program's image sum


def test_hkl_with_sigma_and_phase_columns_gives_the_same_image(tmp_path, monkeypatch):
    # cubic_sigphase.hkl holds cubic.hkl's F plus sigma and phase columns
    monkeypatch.chdir(tmp_path)
    link_inputs(tmp_path)
    args = ("-cell 100 100 100 90 90 90 -default_F 7 -lambda 1.0 -N 2 -distance 100 -pixel 0.1 "
            "-interpolate -detpixels 128 -nonoise -nopgm -noprogress -floatfile f.bin").split()
    assert run_main(args + ["-hkl", "inputs/cubic_sigphase.hkl"]).status == 0
    ours = np.fromfile(tmp_path / "f.bin", dtype=np.float32)
    golden = np.frombuffer(gzip.decompress(
        (GOLDEN / "interpolate_fallback" / "float.bin.gz").read_bytes()), dtype=np.float32)
    np.testing.assert_array_equal(ours, golden)


def test_options_the_c_program_ignores_are_accepted_with_a_warning(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for extra in (["-coherent"], ["-density", "1.3"], ["-MW", "18000"], ["-stol", "x.stol"]):
        result = run_main(TRICLINIC + extra)
        assert result.status == 0, result.stderr
        assert f"WARNING: {extra[0]} is read by nanoBragg but does not change the image" in \
            result.stderr


def test_custom_convention_swings_two_theta_about_the_c_default_axis(tmp_path, monkeypatch):
    # custom vectors without -twotheta_axis: the C program's default axis is (0, 1, 0)
    monkeypatch.chdir(tmp_path)
    args = ("-cell 70 80 90 75 85 95 -default_F 10 -lambda 1 -N 5 -distance 100 -pixel 0.1 "
            "-detpixels 48 -fdet_vector 0 0 1 -twotheta 10 -nonoise -nopgm -noprogress "
            "-floatfile f.bin").split()
    result = run_main(args)
    assert result.status == 0, result.stderr
    # printed and rendered by the C nanoBragg for the same command line
    assert "  DIRECTION_OF_DETECTOR_X-AXIS= 0.173648 0 0.984808" in result.stdout
    assert "max_I = 1.23889  at 0.003175 0.001875" in result.stdout
    image = np.fromfile(tmp_path / "f.bin", dtype=np.float32).astype(np.float64)
    assert abs(image.sum() / 31.285487421005 - 1) < 1e-7
