"""Fuzzing detector geometry files: a CrystFEL .geom or a DIALS experiment list, mangled.

Each reader must return panels or raise one InputFileError line naming the file; nothing
else (no KeyError, TypeError, ValueError, overflow or traceback). Valid files are mutated
line by line (values swapped for odd numbers and text, keys dropped or repeated, bytes
inserted), and JSON trees have their values replaced by other JSON values. Knobs as in
``test_fuzz.py``.
"""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from torchbragg.io.dials import read_dials_detector
from torchbragg.io.errors import InputFileError
from torchbragg.panels import MultiPanelDetector, read_crystfel_geom

FUZZ = settings(max_examples=int(os.environ.get("TORCHBRAGG_FUZZ_EXAMPLES", "50")),
                deadline=None, derandomize=not os.environ.get("TORCHBRAGG_FUZZ_RANDOM"),
                database=None, suppress_health_check=[HealthCheck.too_slow,
                                                      HealthCheck.function_scoped_fixture])

GEOM = """res = 5000
clen = 0.1
photon_energy = 9000
p0/min_fs = 0
p0/max_fs = 15
p0/min_ss = 0
p0/max_ss = 15
p0/fs = -1x
p0/ss = -1y
p0/corner_x = 16
p0/corner_y = 16
p1/min_fs = 0
p1/max_fs = 15
p1/min_ss = 16
p1/max_ss = 31
p1/fs = -1.0x +0.0y +0.0z
p1/ss = +0.0x -1.0y
p1/corner_x = -2
p1/corner_y = 16
p1/coffset = 0.001
""".splitlines()

EXPT = {"__id__": "ExperimentList",
        "experiment": [{"__id__": "Experiment", "beam": 0, "detector": 0}],
        "beam": [{"direction": [0.0, 0.0, 1.0], "wavelength": 1.0}],
        "detector": [{"panels": [{"name": "a", "fast_axis": [1.0, 0.0, 0.0],
                                  "slow_axis": [0.0, -1.0, 0.0],
                                  "origin": [-10.0, 10.0, -100.0], "pixel_size": [0.1, 0.1],
                                  "image_size": [16, 16]}],
                      "hierarchy": {"fast_axis": [1.0, 0.0, 0.0],
                                    "slow_axis": [0.0, 1.0, 0.0], "origin": [0.0, 0.0, 0.0],
                                    "children": [{"panel": 0}]}}]}

odd_text = st.sampled_from(["", "nan", "inf", "-inf", "1e999", "-0", "0", "1e-320", "x",
                            "+1x", "2x 3y", "=", "/", ";", "9" * 40, "0.5", "-1", "1 m",
                            "1 mm", "\u00e9", "p0/fs"])


def assert_panels_or_one_line(read, path) -> None:
    try:
        detector = read(path)
    except InputFileError as err:
        message = str(err)
        assert "\n" not in message and os.fspath(path) in message, message
        return
    assert isinstance(detector, MultiPanelDetector)
    for panel in detector:
        assert np.isfinite(panel.origin_mm).all() and panel.pixel_size_mm > 0


@FUZZ
@given(edits=st.lists(st.tuples(st.integers(0, len(GEOM) - 1),
                                st.sampled_from(["value", "drop", "repeat", "bytes", "key"]),
                                odd_text), max_size=4))
def test_mangled_geom_files(tmp_path, edits):
    lines = list(GEOM)
    for index, how, text in edits:
        index %= len(lines) or 1
        if not lines:
            break
        key, _, value = lines[index].partition("=")
        if how == "value":
            lines[index] = f"{key}= {text}"
        elif how == "drop":
            del lines[index]
        elif how == "repeat":
            lines.insert(index, lines[index])
        elif how == "key":
            lines[index] = f"{text} = {value}"
        else:
            lines[index] = lines[index][:3] + text + lines[index][3:]
    path = tmp_path / "f.geom"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    assert_panels_or_one_line(lambda p: read_crystfel_geom(p, clen_m=0.1), path)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-2, 2**70) | st.floats() | st.text(max_size=4),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=4), inner,
                                                                  max_size=3),
    max_leaves=8)


def _paths(tree, prefix=()):
    yield prefix
    if isinstance(tree, dict):
        for key, value in tree.items():
            yield from _paths(value, (*prefix, key))
    elif isinstance(tree, list):
        for k, value in enumerate(tree):
            yield from _paths(value, (*prefix, k))


@FUZZ
@given(data=st.data())
def test_mangled_experiment_lists(tmp_path, data):
    doc = json.loads(json.dumps(EXPT))
    paths = [p for p in _paths(doc) if p]
    for _ in range(data.draw(st.integers(1, 3))):
        path = data.draw(st.sampled_from(paths))
        parent = doc
        try:
            for step in path[:-1]:
                parent = parent[step]
            parent[path[-1]] = data.draw(json_values)
        except (KeyError, IndexError, TypeError):
            continue  # an earlier edit replaced this branch
    file = tmp_path / "f.expt"
    file.write_text(json.dumps(doc), encoding="utf-8")
    assert_panels_or_one_line(read_dials_detector, file)


def test_the_unmangled_files_read(tmp_path):
    (tmp_path / "f.geom").write_text("\n".join(GEOM) + "\n")
    (tmp_path / "f.expt").write_text(json.dumps(EXPT))
    assert len(read_crystfel_geom(tmp_path / "f.geom")) == 2
    assert len(read_dials_detector(tmp_path / "f.expt")) == 1


@pytest.mark.parametrize("text", ["p0/min_fs = 0\np0/max_fs = 1e400\n", "res = 1e-320\n"])
def test_extreme_numbers_in_geom_files(tmp_path, text):
    path = tmp_path / "x.geom"
    path.write_text("\n".join(GEOM) + "\n" + text)
    assert_panels_or_one_line(read_crystfel_geom, path)
