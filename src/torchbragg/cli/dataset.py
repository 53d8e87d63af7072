"""``torchbragg-dataset``: render a serial-crystallography dataset on Dask into one HDF5 file.

::

    torchbragg-dataset SPEC --out PATH [--workers N | --scheduler ADDRESS]
        [--device cpu|cuda] [--resume] [--geom PATH]

SPEC is a TOML file (see :mod:`torchbragg.dataset.spec` and ``docs/dataset.md``). Shots run
as Dask tasks on a local cluster of ``--workers`` processes (default: the CPU count) or on
the scheduler at ``--scheduler``; the client writes each shot once as it completes, with a
progress line on stderr. ``--resume`` finishes a file an interrupted run left. ``--geom``
writes a CrystFEL geometry file for the images (before any shot is rendered).

Exit status: 0 on success, 2 for bad input (one line on stderr), 130 when interrupted.
"""

from __future__ import annotations

import argparse

from torchbragg.cli.small import OneLineParser, count_argument, fail, run_command

PROG = "torchbragg-dataset"


def _parser() -> argparse.ArgumentParser:
    parser = OneLineParser(prog=PROG, description="Render a dataset of still shots on Dask.")
    parser.add_argument("spec", metavar="SPEC", help="the dataset's TOML spec")
    parser.add_argument("--out", required=True, metavar="PATH", help="HDF5 file to write")
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--workers", type=count_argument, metavar="N",
                       help="worker processes of a local cluster (default: CPU count)")
    where.add_argument("--scheduler", metavar="ADDRESS", help="a running Dask scheduler")
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--resume", action="store_true",
                        help="finish the shots an interrupted run left in --out")
    parser.add_argument("--geom", metavar="PATH",
                        help="also write a CrystFEL geometry file describing --out's images")
    return parser


def _run(args: argparse.Namespace) -> int:
    from torchbragg.dataset.run import DatasetError, run_dataset
    from torchbragg.dataset.spec import SpecError, load_spec

    try:
        spec = load_spec(args.spec)
        run_dataset(spec, args.out, workers=args.workers, scheduler=args.scheduler,
                    device=args.device, resume=args.resume, geom=args.geom)
    except (SpecError, DatasetError, ImportError) as err:
        return fail(PROG, err)
    except OSError as err:
        return fail(PROG, f"{args.out}: {err}")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Run ``torchbragg-dataset`` with ``argv``; return the exit status."""
    return run_command(PROG, _parser(), _run, argv)


def main_exit() -> None:
    """Console-script entry point."""
    raise SystemExit(main())


if __name__ == "__main__":
    main_exit()
