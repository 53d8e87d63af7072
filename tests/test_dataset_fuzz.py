"""Fuzzing dataset specs: any TOML a user may write is run or refused in one SpecError line.

Specs are drawn as tables of the known keys (and some unknown ones) holding values of every
TOML type, in and out of range; :func:`torchbragg.dataset.spec.parse_spec` must either
accept the spec (and its per-shot draws must then work) or raise SpecError with a one-line
message. Knobs as in ``test_fuzz.py`` (``TORCHBRAGG_FUZZ_EXAMPLES``, ``TORCHBRAGG_FUZZ_RANDOM``).
"""

from __future__ import annotations

import json
import math
import os

import numpy as np
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

pytest.importorskip("distributed")

from torchbragg.dataset.spec import (  # noqa: E402
    DETECTOR_KEYS,
    SPECTRUM_KEYS,
    SpecError,
    parse_spec,
    shot_draws,
    shot_spectrum,
)

FUZZ = settings(max_examples=int(os.environ.get("TORCHBRAGG_FUZZ_EXAMPLES", "50")),
                deadline=None, derandomize=not os.environ.get("TORCHBRAGG_FUZZ_RANDOM"),
                database=None, suppress_health_check=[HealthCheck.too_slow])
BASE = "-cell 70 80 90 75 85 95 -default_F 10 -lambda 1 -distance 100 -detpixels 8"

numbers = st.one_of(st.integers(-3, 10**6), st.floats(allow_nan=True, allow_infinity=True),
                    st.sampled_from([0, 1, -1, 0.5, 1e30, -1e-30, 4096, 4097, 65537]))
scalars = st.one_of(numbers, st.booleans(), st.text(max_size=6),
                    st.sampled_from(["random", "fixed", "sase", "gaussian", "gauss", "none"]))
distributions = st.one_of(
    numbers,
    st.fixed_dictionaries({"distribution": st.sampled_from(["uniform", "normal", "fixed", "x"])},
                          optional={"low": numbers, "high": numbers, "mean": numbers,
                                    "sigma": numbers, "value": numbers, "other": numbers}))
vary = st.fixed_dictionaries({}, optional={
    "orientation": scalars, "N": distributions, "mosaic_spread_deg": distributions,
    "fluence": distributions, "wavelength_A": distributions, "colour": scalars,
    "spectrum": st.dictionaries(st.sampled_from([*SPECTRUM_KEYS, "x"]), scalars, max_size=6)})
detector = st.dictionaries(st.sampled_from([*DETECTOR_KEYS, "x"]), scalars, max_size=6)


def toml_value(value) -> str:
    """``value`` as TOML (inline tables for dicts; TOML's own nan and inf)."""
    if isinstance(value, dict):
        return "{" + ", ".join(f"{json.dumps(k)} = {toml_value(v)}" for k, v in value.items()) + "}"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and not math.isfinite(value):
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")
    if isinstance(value, (int, float)):
        return repr(value)
    return json.dumps(value, ensure_ascii=False)


@FUZZ
@given(shots=st.one_of(st.integers(1, 4), st.integers(1, 4), scalars),
       seed=st.one_of(st.integers(0, 9), st.integers(0, 9), scalars), vary=vary,
       detector=st.none() | detector, compression=st.none() | scalars)
def test_any_spec_is_run_or_refused_in_one_line(shots, seed, vary, detector, compression):
    lines = [f'base = "{BASE}"', f"shots = {toml_value(shots)}", f"seed = {toml_value(seed)}"]
    if vary:
        lines.append(f"vary = {toml_value(vary)}")
    if detector is not None:
        lines.append(f"detector = {toml_value(detector)}")
    if compression is not None:
        lines.append(f"output = {{compression = {toml_value(compression)}}}")
    text = "\n".join(lines) + "\n"
    try:
        spec = parse_spec(text)
    except SpecError as err:
        assert str(err) and "\n" not in str(err)
        event(f"refused: {str(err).split()[0]}")
        return
    event("accepted")
    for index in (0, spec.shots - 1):
        draws = shot_draws(spec, index)
        for key in ("fluence", "wavelength_A"):
            assert key not in draws or draws[key] > 0 or spec.vary[key].kind == "normal"
        if spec.spectrum is not None:
            spectrum = shot_spectrum(spec, index, 1.0)
            assert math.isclose(float(spectrum.intensity.sum()), 1.0, rel_tol=1e-9)


positive = st.floats(1e-6, 1e6)
valid_vary = st.fixed_dictionaries({}, optional={
    "orientation": st.sampled_from(["random", "fixed"]),
    "N": st.one_of(st.floats(1, 200), st.builds(lambda a, b: {"distribution": "uniform",
                                                               "low": min(a, b), "high": max(a, b)},
                                                 st.floats(1, 100), st.floats(1, 100)),
                   st.builds(lambda m, s: {"distribution": "normal", "mean": m, "sigma": s},
                             st.floats(-10, 100), st.floats(0, 1e3))),
    "fluence": st.one_of(positive, st.builds(lambda m: {"distribution": "normal", "mean": m,
                                                        "sigma": m / 7}, positive)),
    "wavelength_A": st.one_of(st.floats(0.1, 10), st.builds(
        lambda a, b: {"distribution": "uniform", "low": min(a, b), "high": max(a, b)},
        st.floats(0.1, 10), st.floats(0.1, 10))),
    "spectrum": st.fixed_dictionaries(
        {"model": st.sampled_from(["sase", "gaussian"]),
         "bandwidth_percent": st.floats(1e-3, 24.9)},
        optional={"sources": st.integers(1, 4096), "bins": st.integers(8, 65536)}),
})


@FUZZ
@given(vary=valid_vary, shots=st.integers(1, 10**6), seed=st.integers(0, 2**63))
def test_valid_specs_draw_values_in_range(vary, shots, seed):
    text = (f'base = "{BASE}"\nshots = {shots}\nseed = {seed}\n'
            + (f"vary = {toml_value(vary)}\n" if vary else ""))
    try:
        spec = parse_spec(text)
    except SpecError as err:  # a spectrum too fine for its grid, say
        assert "\n" not in str(err)
        event(f"refused: {str(err)[:40]}")
        return
    event("accepted")
    for index in (0, shots - 1):
        draws = shot_draws(spec, index)
        if "N" in draws:
            assert (draws["N"] >= 1).all()
        if "fluence" in draws:
            assert draws["fluence"] > 0
        if "rotation" in draws:
            assert abs(float(np.linalg.det(draws["rotation"])) - 1) < 1e-9
        if spec.spectrum is not None:
            spectrum = shot_spectrum(spec, index, 1.0)
            assert (spectrum.intensity >= 0).all()
