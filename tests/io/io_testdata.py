"""Paths and loaders for the golden C outputs the io tests compare against."""

import gzip
import json
from pathlib import Path

import numpy as np

DATA = Path(__file__).resolve().parents[1] / "data"
GOLDEN = DATA / "golden"
INPUTS = GOLDEN / "inputs"
C_RUNS = DATA / "c_runs"


def read_maybe_gz(path: Path) -> bytes:
    if path.suffix == ".gz":
        return gzip.decompress(path.read_bytes())
    return path.read_bytes()


def golden_bytes(case: str, name: str) -> bytes:
    return read_maybe_gz(GOLDEN / case / name)


def golden_float_image(case: str, n_slow: int, n_fast: int) -> np.ndarray:
    data = golden_bytes(case, "float.bin.gz")
    return np.frombuffer(data, dtype="<f4").reshape(n_slow, n_fast)


def golden_stdout(case: str) -> list[str]:
    return (GOLDEN / case / "stdout.txt").read_text().splitlines()


def golden_case(case: str) -> dict:
    return json.loads((GOLDEN / case / "case.json").read_text())
