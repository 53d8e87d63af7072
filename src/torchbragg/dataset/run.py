"""Render a dataset's shots as Dask tasks and stream them into one HDF5 file.

Each worker process builds the :class:`torchbragg.Experiment` of the spec's ``base`` once
and reuses it, setting each shot's values (``crystal.misset_deg`` for the orientation,
``crystal.n_cells``, ``crystal.mosaic_spread_deg``, ``beam.fluence_per_m2``,
``beam.wavelength_A``) before rendering. With a ``[background]`` or ``[detector]`` table a
shot is ``torchbragg.composite.render_composite(experiment, sample, response, generator=g)``:
Bragg photons plus the amorphous sample's, in photons, then (with a detector) the detector
response, in ADU; ``g`` is a ``torch.Generator`` seeded with
:func:`torchbragg.dataset.spec.noise_seed` (seed, shot), and the calibration error comes
from a generator seeded with :func:`~torchbragg.dataset.spec.calibration_seed` (the same for
every shot, as one detector's). Only the client process writes the file, as
results arrive; a result for a shot already written (a task rerun after a worker died) is
dropped, so every shot is written once.

File layout (float arrays not yet rendered hold NaN, images 0)::

    /entry [NXentry]                 attrs: dataset_spec (the spec text), base
      data [NXdata]    data          (shots, slow, fast) float32, chunked per shot; attr
                                     units: photons, or ADU with a [detector]
      truth            a_matrix      (shots, 3, 3) MOSFLM A (columns a*, b*, c* x lambda)
                       misset_deg    (shots, 3)
                       N             (shots, 3) Na, Nb, Nc
                       mosaic_spread_deg, fluence (photons/m^2), wavelength_A   (shots,)
                       thickness_mm  (shots,) with a [background]: the sample thickness, mm
                       noise_seed    (shots,) int64 with detector.noise (-1 not yet written)
                       seed          the spec's seed (scalar)
                       calibration_seed  scalar int64, with detector.noise
                       done          (shots,) bool, set after the shot's other fields
"""

from __future__ import annotations

import logging
import os
import sys
import time
from collections.abc import Callable

import numpy as np

from torchbragg.dataset.spec import DatasetSpec

__all__ = ["DatasetError", "render_shot", "run_dataset", "truth_fields"]

TRUTH_FIELDS = {"a_matrix": (3, 3), "misset_deg": (3,), "N": (3,), "mosaic_spread_deg": (),
                "fluence": (), "wavelength_A": ()}
_CACHE: dict = {}
_CURVES: dict = {}


def truth_fields(spec: DatasetSpec) -> dict:
    """Per-shot truth datasets of ``spec``: name -> (trailing shape, dtype, fill value)."""
    out = {name: (tail, np.float64, np.nan) for name, tail in TRUTH_FIELDS.items()}
    if spec.background is not None:
        out["thickness_mm"] = ((), np.float64, np.nan)
    if spec.detector is not None and spec.detector["noise"]:
        out["noise_seed"] = ((), np.int64, -1)
    return out


class DatasetError(ValueError):
    """A dataset that cannot be started or resumed (one line says why)."""


# -- worker side ---------------------------------------------------------------------------


def _experiment(base: tuple[str, ...], device: str, threads: int | None):
    """The experiment of ``base`` on ``device``, built once per process."""
    key = (base, device)
    if key not in _CACHE:
        import torch

        from torchbragg.experiment import Experiment

        if threads:
            torch.set_num_threads(threads)
        _CACHE.clear()
        _CACHE[key] = Experiment.from_args(list(base), device=device)
    return _CACHE[key]


def _apply(exp, draws: dict) -> None:
    """Set one shot's drawn values on the experiment."""
    from torchbragg.orientation import misset_angles

    if "rotation" in draws:
        exp.set("crystal.misset_deg", misset_angles(draws["rotation"]))
    names = {"N": "crystal.n_cells", "mosaic_spread_deg": "crystal.mosaic_spread_deg",
             "fluence": "beam.fluence_per_m2", "wavelength_A": "beam.wavelength_A"}
    for key, name in names.items():
        if key in draws:
            exp.set(name, draws[key])


def _reciprocal(exp) -> np.ndarray:
    """The unrotated reciprocal basis (columns a*, b*, c*, 1/Å) the misset turns."""
    from torchbragg.orientation import b_matrix

    crystal = exp.config.crystal
    if crystal.mosflm_reciprocal_invA is not None:
        return np.asarray(crystal.mosflm_reciprocal_invA, dtype=np.float64).T
    a, b, c, al, be, ga = crystal.cell
    return b_matrix((a, b, c, *np.degrees([al, be, ga])))


def truth_of(exp) -> dict:
    """The true values of the experiment's current shot (see the module's layout)."""
    from torchbragg.orientation import misset_matrix

    value = {k: exp.get(n).cpu().numpy() for k, n in
             (("misset_deg", "crystal.misset_deg"), ("N", "crystal.n_cells"),
              ("fluence", "beam.fluence_per_m2"), ("wavelength_A", "beam.wavelength_A"))}
    mosaic = "crystal.mosaic_spread_deg" in exp.parameter_names()
    value["mosaic_spread_deg"] = exp.get("crystal.mosaic_spread_deg").cpu().numpy() \
        if mosaic else np.zeros(())
    value["a_matrix"] = (misset_matrix(value["misset_deg"]) @ _reciprocal(exp)
                         * float(value["wavelength_A"]))
    return value


def render_shot(spec: DatasetSpec, index: int, device: str = "cpu", threads: int | None = None,
                crash_once: tuple[int, str] | None = None) -> dict:
    """Render shot ``index`` of ``spec``: its image (float32) and true values.

    ``crash_once`` (testing): (index, marker path): the first task for that shot creates the
    marker and ends its process abruptly, as a dying worker would.
    """
    import torch

    from torchbragg.dataset.spec import shot_draws

    if crash_once is not None and crash_once[0] == index and not os.path.exists(crash_once[1]):
        open(crash_once[1], "w").close()
        os._exit(1)
    exp = _experiment(spec.base, device, threads)
    draws = shot_draws(spec, index)
    _apply(exp, draws)
    extra: dict = {}
    with torch.no_grad():
        if spec.background is None and spec.detector is None:
            image = exp.render()
        else:
            image = _composite(spec, index, exp, draws, extra)
        image = image.to("cpu", torch.float32).numpy()
    return {"index": index, "image": image, **truth_of(exp), **extra}


def _curve(path: str, like):
    """The F(sin(theta)/lambda) curve of a stol file (dtype, device of ``like``), read once."""
    from torchbragg.stol import StructureFactorCurve, read_stol_table

    key = (path, like.dtype, str(like.device))
    if key not in _CURVES:
        curve = StructureFactorCurve.from_table(read_stol_table(path), dtype=like.dtype)
        _CURVES[key] = curve.to(like.device)
    return _CURVES[key]


def _composite(spec: DatasetSpec, index: int, exp, draws: dict, extra: dict):
    """Shot ``index`` with its background and/or detector response (see the module doc)."""
    import torch

    from torchbragg.composite import AmorphousSample, DetectorResponse, render_composite
    from torchbragg.dataset.spec import calibration_seed, noise_seed

    sample = response = generator = None
    if spec.background is not None:
        bg = spec.background
        like = exp.get("beam.fluence_per_m2")
        sample = AmorphousSample(_curve(bg["stol"], like), thickness_mm=draws["thickness_mm"],
                                 width_mm=bg["width_mm"], height_mm=bg["height_mm"],
                                 density_g_per_cm3=bg["density_g_per_cm3"],
                                 molecular_weight=bg["molecular_weight"])
        extra["thickness_mm"] = draws["thickness_mm"]
    if spec.detector is None:
        return render_composite(exp, sample, None)
    response = DetectorResponse(**spec.detector)
    if not response.noise:
        return render_composite(exp, sample, response)
    device = exp.get("beam.fluence_per_m2").device
    seed = noise_seed(spec, index)
    extra["noise_seed"] = seed
    generator = torch.Generator(device=device)
    generator.manual_seed(seed)
    calibration = torch.Generator(device=device)
    calibration.manual_seed(calibration_seed(spec))
    return render_composite(exp, sample, response, generator=generator,
                            calibration_generator=calibration)


# -- client side ---------------------------------------------------------------------------


def _create(path: str, spec: DatasetSpec, shape: tuple[int, int]):
    """A new file with empty datasets for every shot."""
    import h5py

    from torchbragg.io.nexus import _filter_options, choose_compression

    f = h5py.File(path, "w")
    entry = f.create_group("entry")
    entry.attrs["NX_class"] = "NXentry"
    entry.attrs["dataset_spec"] = spec.text
    entry.attrs["base"] = " ".join(spec.base)
    data = entry.create_group("data")
    data.attrs["NX_class"] = "NXdata"
    data.attrs["signal"] = "data"
    n = spec.shots
    images = data.create_dataset("data", (n, *shape), np.float32, chunks=(1, *shape),
                                 fillvalue=0.0,
                                 **_filter_options(choose_compression(spec.compression)))
    images.attrs["units"] = "ADU" if spec.detector is not None else "photons"
    truth = entry.create_group("truth")
    for name, (tail, dtype, fill) in truth_fields(spec).items():
        truth.create_dataset(name, (n, *tail), dtype, fillvalue=fill)
    truth.create_dataset("seed", data=np.int64(spec.seed))
    if spec.detector is not None and spec.detector["noise"]:
        from torchbragg.dataset.spec import calibration_seed

        truth.create_dataset("calibration_seed", data=np.int64(calibration_seed(spec)))
    truth.create_dataset("done", (n,), bool, fillvalue=False)
    return f


def _reopen(path: str, spec: DatasetSpec, shape: tuple[int, int]):
    """The file of an interrupted run of the same spec, opened for writing."""
    import h5py

    if not os.path.exists(path):
        raise DatasetError(f"--resume: {path} does not exist")
    try:
        f = h5py.File(path, "r+")
        same = (f["entry"].attrs.get("dataset_spec") == spec.text
                and f["entry/data/data"].shape == (spec.shots, *shape))
    except (OSError, KeyError) as err:
        raise DatasetError(f"--resume: {path} is not a dataset file: {err}") from None
    if not same:
        f.close()
        raise DatasetError(f"--resume: {path} was written from another spec")
    return f


def _write(f, result: dict) -> bool:
    """Write one result unless its shot is done; True when written."""
    i = int(result["index"])
    done = f["entry/truth/done"]
    if done[i]:
        return False
    f["entry/data/data"][i] = result["image"]
    truth = f["entry/truth"]
    for name in truth:
        if truth[name].ndim and name != "done":
            truth[name][i] = result[name]
    done[i] = True
    f.flush()
    return True


def _client(workers: int | None, scheduler: str | None):
    """A Dask client (and the local cluster it owns, or None) and its worker count."""
    from distributed import Client, LocalCluster

    if scheduler is not None:
        try:
            client = Client(scheduler, timeout="10s")
        except (OSError, TimeoutError) as err:
            raise DatasetError(f"cannot reach the scheduler {scheduler}: {err}") from None
        return client, None
    cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                           dashboard_address=None, silence_logs=logging.ERROR)
    return Client(cluster), cluster


def _progress(done: int, total: int, start: float, workers: int) -> None:
    """One progress line on stderr; the rate counts from the first result (after warm-up)."""
    rate = (done - 1) / max(time.perf_counter() - start, 1e-9)
    print(f"\rshots {done}/{total}  {rate:.2f} shots/s  {rate / workers:.2f} shots/s per "
          "worker", end="", file=sys.stderr, flush=True)


def run_dataset(spec: DatasetSpec, out: str | os.PathLike, *, workers: int | None = None,
                scheduler: str | None = None, device: str = "cpu", resume: bool = False,
                max_shots: int | None = None, crash_once: tuple[int, str] | None = None,
                progress: Callable | None = _progress) -> int:
    """Render the shots of ``spec`` not yet in ``out``; return how many were written.

    Parameters
    ----------
    spec : DatasetSpec
        A checked spec (:func:`torchbragg.dataset.spec.load_spec`).
    out : path
        The HDF5 file; created (it must not exist) unless ``resume``.
    workers : int, optional
        Worker processes of the local cluster (default: the CPU count).
    scheduler : str, optional
        Address of a running Dask scheduler to use instead.
    device : str
        Where the workers render (``cpu``, ``cuda``).
    resume : bool
        Reopen ``out`` and render only the shots not marked done.
    max_shots : int, optional
        Render at most this many of the pending shots (to stop a run early).
    crash_once, progress
        Testing hook (see :func:`render_shot`); progress printer (None: silent).
    """
    from torchbragg.experiment import Experiment, ExperimentError

    out = os.fspath(out)
    if not resume and os.path.exists(out):
        raise DatasetError(f"{out} exists: use --resume to finish it, or remove it")
    try:
        probe = Experiment.from_args(list(spec.base))
    except ExperimentError as err:
        raise DatasetError(f"base: {err}") from None
    _check_parameters(spec, probe)
    _check_device(device, scheduler)
    f = _reopen(out, spec, probe.shape) if resume else _create(out, spec, probe.shape)
    try:
        pending = [int(i) for i in np.flatnonzero(~f["entry/truth/done"][:])]
        pending = pending[:max_shots] if max_shots is not None else pending
        return _schedule(f, spec, pending, workers, scheduler, device, crash_once, progress)
    finally:
        f.close()


def _check_device(device: str, scheduler: str | None) -> None:
    """A local cluster can render on cuda only where this machine has it."""
    import torch

    if device.startswith("cuda") and scheduler is None and not torch.cuda.is_available():
        raise DatasetError("--device cuda: torch sees no CUDA device here")


def _check_parameters(spec: DatasetSpec, exp) -> None:
    names = set(exp.parameter_names())
    need = {"orientation": "crystal.misset_deg", "N": "crystal.n_cells",
            "mosaic_spread_deg": "crystal.mosaic_spread_deg", "fluence": "beam.fluence_per_m2",
            "wavelength_A": "beam.wavelength_A"}
    varied = list(spec.vary) + (["orientation"] if spec.orientation else [])
    for key in varied:
        if need[key] not in names:
            raise DatasetError(f"vary.{key}: {need[key]} cannot change in this experiment")


def _result(future) -> dict:
    """A finished task's result; a shot that failed (or killed workers) is a DatasetError."""
    try:
        return future.result()
    except Exception as err:  # noqa: BLE001 - any failure of a task ends the run
        from torchbragg.errors import one_line

        shot = future.key.split("-")[2] if str(future.key).startswith("torchbragg-") else "?"
        raise DatasetError(f"shot {shot} failed: {type(err).__name__}: {one_line(err)}; "
                           "--resume continues after the shots already written") from None


def _schedule(f, spec, pending, workers, scheduler, device, crash_once, progress) -> int:
    """Submit the pending shots and write results as they complete."""
    from distributed import as_completed

    if not pending:
        return 0
    workers = workers or os.cpu_count() or 1
    threads = max(1, (os.cpu_count() or 1) // workers) if scheduler is None else None
    client, cluster = _client(workers, scheduler)
    written = 0
    try:
        count = max(len(client.scheduler_info().get("workers", {})), 1)
        futures = [client.submit(render_shot, spec, i, device, threads, crash_once,
                                 key=f"torchbragg-shot-{i}-{os.getpid()}-{time.time_ns()}")
                   for i in pending]
        start = None
        for future in as_completed(futures):
            written += _write(f, _result(future))
            start = start or time.perf_counter()
            future.release()
            if progress is not None:
                progress(written, len(pending), start, count)
        if progress is not None:
            print(file=sys.stderr)
    finally:
        client.close()
        if cluster is not None:
            cluster.close()
    return written
