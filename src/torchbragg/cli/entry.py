"""Console-script entry points that import nothing heavy before they can catch Ctrl-C.

A Ctrl-C while Python imports the command line's modules (numpy among them) would otherwise
end in a traceback.
"""

from __future__ import annotations

import sys


def _interrupted() -> None:
    sys.stderr.write("torchbragg: interrupted\n")
    sys.exit(130)


def torchbragg() -> None:
    """``torchbragg``: nanoBragg's command line."""
    try:
        from torchbragg.cli.main import main
    except KeyboardInterrupt:
        _interrupted()
    sys.exit(main())


def compare() -> None:
    """``torchbragg-compare``."""
    try:
        from torchbragg.cli.compare import main
    except KeyboardInterrupt:
        _interrupted()
    sys.exit(main())
