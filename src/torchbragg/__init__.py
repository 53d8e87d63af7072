"""torchbragg: nanoBragg in PyTorch.

``Experiment`` (built from :func:`detector`, :func:`crystal`, :func:`beam`,
:func:`structure_factors` and :func:`sampling`, or from a nanoBragg command line) renders
images and exposes named parameters in user units; :mod:`torchbragg.refine` fits them to
measured pixels. ``Simulator`` is the underlying ``nn.Module``. Everything is imported on
first use, so that the command line can answer ``--help`` without loading torch.
"""

__version__ = "0.1.0"  # keep equal to pyproject.toml's version (tests/test_cli_polish.py checks)

_HOMES = {
    "Experiment": "experiment", "ExperimentError": "experiment",
    "detector": "parts", "crystal": "parts", "beam": "parts", "structure_factors": "parts",
    "sampling": "parts",
    "Simulator": "simulator", "simulate": "simulator",
    "refine": "refine", "poisson_nll": "refine", "least_squares": "refine",
    "near_spots": "refine", "standard_errors": "refine",
    "render_composite": "composite", "AmorphousSample": "composite",
    "DetectorResponse": "composite", "render_composite_panels": "composite",
    "Panel": "panels", "MultiPanelDetector": "panels", "render_panels": "panels",
    "PanelRenderer": "panels", "read_crystfel_geom": "panels",
    "read_dials_detector": "io.dials",
}
__all__ = list(_HOMES)


def __getattr__(name: str):
    if name in _HOMES:
        import importlib

        return getattr(importlib.import_module(f"torchbragg.{_HOMES[name]}"), name)
    raise AttributeError(f"module 'torchbragg' has no attribute {name!r}")
