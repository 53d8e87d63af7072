"""Serial-crystallography datasets: many still shots of one experiment, rendered on Dask.

See :mod:`torchbragg.dataset.spec` for the spec file and :mod:`torchbragg.dataset.run` for
the scheduling and the HDF5 layout (also ``docs/dataset.md``).
"""

from torchbragg.dataset.spec import DatasetSpec, SpecError, load_spec, shot_draws

__all__ = ["DatasetSpec", "SpecError", "load_spec", "shot_draws"]
