"""Render a dataset's shots as Dask tasks and stream them into one HDF5 file.

Each worker process builds the :class:`torchbragg.Experiment` of the spec's ``base`` once
(:func:`prepare`) and reuses it, setting each shot's values (``crystal.misset_deg`` for the
orientation, ``crystal.n_cells``, ``crystal.mosaic_spread_deg``, ``beam.fluence_per_m2``,
``beam.wavelength_A``, the sources' wavelengths for a spectrum) before rendering. With a
``geometry`` file the panels are rendered with :class:`torchbragg.panels.PanelRenderer`
(built once) and placed where the geometry file's data layout puts them (CrystFEL min_ss,
min_fs), or one below the other. With a ``[background]`` or
``[detector]`` table a shot goes through :func:`torchbragg.composite.render_composite` (or
``render_composite_panels``): Bragg photons plus the amorphous sample's, in photons, then
(with a detector) the detector response, in ADU; its noise generator is a
``torch.Generator`` seeded with :func:`torchbragg.dataset.spec.noise_seed` (seed, shot), and
the calibration error comes from a generator seeded with
:func:`~torchbragg.dataset.spec.calibration_seed` (the same for every shot, as one
detector's). Only the client process writes the file, as results arrive; a result for a
shot already written (a task rerun after a worker died) is dropped, so every shot is
written once. The file's layout is in :mod:`torchbragg.dataset.layout`.

Structure factors computed from an atomic model (``-hkl model.pdb``) reach the largest
scattering angle of any panel at the shortest wavelength any shot can have (the base's
``--model-dmin``, when given, is kept).
"""

from __future__ import annotations

import logging
import os
import sys
import time
import warnings
from collections.abc import Callable

import numpy as np

from torchbragg.dataset.layout import (
    DatasetError,
    assemble,
    create_file,
    overlapping,
    reopen_file,
    truth_fields,
    write_shot,
)
from torchbragg.dataset.setup import Setup, prepare, set_source_wavelengths
from torchbragg.dataset.spec import DatasetSpec

__all__ = ["DatasetError", "Setup", "prepare", "render_shot", "run_dataset", "truth_fields"]

_CACHE: dict = {}
_CURVES: dict = {}


# -- worker side ---------------------------------------------------------------------------


def worker_device(device: str, name=None, gpus: int | None = None) -> str:
    """The device a worker renders on: ``cuda`` spread over the node's GPUs.

    With several GPUs visible, the worker named ``name`` (a local cluster numbers its
    workers 0, 1, ...) takes ``cuda:(name mod gpus)``; other names and other devices are
    kept as given (set ``CUDA_VISIBLE_DEVICES`` per worker for those).
    """
    if device != "cuda":
        return device
    if gpus is None:
        import torch

        gpus = torch.cuda.device_count()
    if name is None:
        try:
            from distributed import get_worker

            name = get_worker().name
        except (ImportError, ValueError):
            return device
    if gpus > 1 and isinstance(name, int) and not isinstance(name, bool):
        return f"cuda:{name % gpus}"
    return device


def _setup(spec: DatasetSpec, device: str, threads: int | None):
    """The :class:`Setup` of ``spec`` on ``device``, built once per process."""
    device = worker_device(device)
    key = (spec.text, spec.base, device)
    if key not in _CACHE:
        import torch

        if threads:
            torch.set_num_threads(threads)
        _CACHE.clear()
        with warnings.catch_warnings():  # the client reported the base's warnings
            warnings.simplefilter("ignore")
            _CACHE[key] = prepare(spec, device)
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
    setup = _setup(spec, device, threads)
    exp = setup.experiment
    draws = shot_draws(spec, index)
    _apply(exp, draws)
    extra: dict = {}
    if spec.spectrum is not None:
        extra.update(_spectrum(spec, index, exp))
    with torch.no_grad():
        if spec.background is None and spec.detector is None:
            images = setup.renderer() if setup.renderer is not None else exp.render()
        else:
            images = _composite(spec, index, setup, draws, extra)
        if isinstance(images, dict):  # panels, placed as layout.panel_places says
            images = assemble(images, setup.panels)
        image = images.to("cpu", torch.float32).numpy()
    return {"index": index, "image": image, **truth_of(exp), **extra}


def _spectrum(spec: DatasetSpec, index: int, exp) -> dict:
    """Draw shot ``index``'s spectrum around its wavelength and give the sources its quantiles."""
    from torchbragg.dataset.spec import shot_spectrum
    from torchbragg.spectrum import equal_weight_wavelengths

    spectrum = shot_spectrum(spec, index, float(exp.get("beam.wavelength_A")))
    waves = equal_weight_wavelengths(spectrum, spec.spectrum["sources"])
    set_source_wavelengths(exp, waves)
    return {"spectrum_wavelength_A": spectrum.wavelength_A,
            "spectrum_intensity": spectrum.intensity, "source_wavelength_A": waves}


def _curve(path: str, like):
    """The F(sin(theta)/lambda) curve of a stol file (dtype, device of ``like``), read once."""
    from torchbragg.stol import StructureFactorCurve, read_stol_table

    key = (path, like.dtype, str(like.device))
    if key not in _CURVES:
        curve = StructureFactorCurve.from_table(read_stol_table(path), dtype=like.dtype)
        _CURVES[key] = curve.to(like.device)
    return _CURVES[key]


def _composite(spec: DatasetSpec, index: int, setup, draws: dict, extra: dict):
    """Shot ``index`` with its background and/or detector response (see the module doc).

    One image, or panel name -> image with a geometry file.
    """
    import torch

    from torchbragg.composite import (
        AmorphousSample,
        DetectorResponse,
        render_composite,
        render_composite_panels,
    )
    from torchbragg.dataset.spec import calibration_seed, noise_seed

    exp = setup.experiment
    if setup.renderer is not None:
        render = lambda *a, **k: render_composite_panels(exp, setup.renderer, *a, **k)  # noqa: E731
    else:
        render = lambda *a, **k: render_composite(exp, *a, **k)  # noqa: E731
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
        return render(sample, None)
    response = DetectorResponse(**spec.detector)
    if not response.noise:
        return render(sample, response)
    device = exp.get("beam.fluence_per_m2").device
    seed = noise_seed(spec, index)
    extra["noise_seed"] = seed
    generator = torch.Generator(device=device)
    generator.manual_seed(seed)
    calibration = torch.Generator(device=device)
    calibration.manual_seed(calibration_seed(spec))
    return render(sample, response, generator=generator, calibration_generator=calibration)


# -- client side ---------------------------------------------------------------------------


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


def _progress(done: int, total: int, start: float, workers: int, stream=None,
              already: int = 0) -> None:
    """Progress on stderr: a bar redrawn in place on a terminal, else a line per tenth.

    ``done`` of ``total`` shots of this run, after ``already`` shots of an earlier one. The
    rate counts from the first result, so worker start-up is left out (and the first line
    has none).
    """
    from torchbragg.cli.progressbar import ProgressBar

    stream = stream or sys.stderr
    rate = (done - 1) / max(time.perf_counter() - start, 1e-9)
    text = f"{already + done}/{already + total} shots"
    if done > 1:
        text += f"  {rate:.2f} shots/s  {rate / workers:.2f} shots/s per worker"
    if stream.isatty():
        bar = ProgressBar(stream, width=20, label="torchbragg-dataset").text(already + done,
                                                                          already + total)
        print(f"\r{bar}  {text}", end="", file=stream, flush=True)
    elif done == total or (10 * done) // total != (10 * (done - 1)) // total:
        print(f"torchbragg-dataset: {text}", file=stream, flush=True)


def run_dataset(spec: DatasetSpec, out: str | os.PathLike, *, workers: int | None = None,
                scheduler: str | None = None, device: str = "cpu", resume: bool = False,
                max_shots: int | None = None, crash_once: tuple[int, str] | None = None,
                progress: Callable | None = _progress, geom: str | os.PathLike | None = None
                ) -> int:
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
    geom : path, optional
        Also write a CrystFEL geometry file for the images (:func:`write_geom`).
    """
    from torchbragg.experiment import ExperimentError

    out = os.fspath(out)
    if not resume and os.path.exists(out):
        raise DatasetError(f"{out} exists: use --resume to finish it, or remove it")
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            probe = prepare(spec)
    except ExperimentError as err:
        raise DatasetError(f"base: {err}") from None
    for warning in caught:
        print(f"torchbragg-dataset: warning: base: {' '.join(str(warning.message).split())}",
              file=sys.stderr)
    clash = overlapping(probe.panels)
    if clash:
        print(f"torchbragg-dataset: warning: geometry: panels {clash[0]} and {clash[1]} share "
              "pixels in the file's data layout (min/max_ss, min/max_fs): the panels are "
              "placed one below the other instead", file=sys.stderr)
    _check_parameters(spec, probe.experiment)
    _check_device(device, scheduler)
    if geom is not None:
        try:
            write_geom(geom, spec, probe)
        except OSError as err:
            raise DatasetError(f"--geom {os.fspath(geom)}: {err.strerror or err}") from None
    f = (reopen_file(out, spec, probe.panels) if resume
         else create_file(out, spec, probe.panels, probe.experiment.config))
    try:
        pending = [int(i) for i in np.flatnonzero(~f["entry/truth/done"][:])]
        pending = pending[:max_shots] if max_shots is not None else pending
        return _schedule(f, spec, pending, workers, scheduler, device, crash_once, progress)
    finally:
        f.close()


def write_geom(path: str | os.PathLike, spec: DatasetSpec, setup) -> None:
    """A CrystFEL geometry file for the dataset's images (written whole or not at all).

    Its panels sit where :func:`torchbragg.dataset.layout.panel_places` puts them, in the
    frame a geometry file is read in (see :func:`torchbragg.dataset.setup.files_to_lab`); the
    photon energy is the base's (shots of another wavelength have theirs in
    /entry/instrument/beam/incident_wavelength), ``adu_per_photon`` the detector's gain.
    """
    from torchbragg.dataset.layout import panel_places
    from torchbragg.dataset.setup import files_to_lab
    from torchbragg.io.images import write_atomic
    from torchbragg.panels import crystfel_geom_text

    config = setup.experiment.config
    energy = 12398.419843320026 / (config.beam.wavelength_m * 1e10)
    gain = spec.detector["gain"] if spec.detector is not None else 1.0
    text = crystfel_geom_text(setup.panels, panel_places(setup.panels)[1],
                              from_lab=files_to_lab("crystfel", config).T,
                              photon_energy_eV=energy, adu_per_photon=gain)
    write_atomic(path, [text.encode()])


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
    already = int(f["entry/truth/done"][:].sum())  # shots an earlier run wrote
    try:
        count = max(len(client.scheduler_info().get("workers", {})), 1)
        futures = [client.submit(render_shot, spec, i, device, threads, crash_once,
                                 key=f"torchbragg-shot-{i}-{os.getpid()}-{time.time_ns()}")
                   for i in pending]
        start = None
        for future in as_completed(futures):
            written += write_shot(f, _result(future))
            start = start or time.perf_counter()
            future.release()
            if progress is not None:
                progress(written, len(pending), start, count, already=already)
        if progress is not None and sys.stderr.isatty():
            print(file=sys.stderr)
    finally:
        client.close()
        if cluster is not None:
            cluster.close()
    return written
