"""How torchbragg's programs end: an exit status and, on failure, one line on stderr.

Bad input (usage, setup and input-file errors, missing memory, OS errors) is one
``PROG: error: ...`` line and status 2; Ctrl-C is 130; SIGTERM while an output was written is
143 (nothing half-written); anything else is a bug: one ``internal error`` line and status 70,
or its traceback with ``--debug``. Python warnings print as one line; a reader of stdout or
stderr that leaves early silences the output, not the run.
"""

from __future__ import annotations

import sys
import warnings
from collections.abc import Callable

from torchbragg.cli.entry import quiet_when_readers_leave
from torchbragg.cli.parse import UsageError
from torchbragg.errors import SetupError, one_line
from torchbragg.io.errors import InputFileError
from torchbragg.io.images import Terminated


def guarded_main(prog: str, run: Callable[[list[str]], int], argv: list[str],
                 memory_hint: str) -> int:
    """``run(argv)``'s status, every failure turned into one line; see the module notes.

    ``memory_hint`` ends the out-of-memory line ("lower the detector size ...").
    """
    debug = "--debug" in argv
    with quiet_when_readers_leave(), warnings.catch_warnings():
        if not debug:
            warnings.showwarning = _one_line_warning(prog)
        try:
            return _guarded(prog, run, argv, memory_hint)
        except Exception as err:  # noqa: BLE001 - anything else is a bug: one line
            if debug:
                raise
            print(f"{prog}: internal error: {type(err).__name__}: {one_line(err)} (rerun "
                  "with --debug for the traceback, and please report it)", file=sys.stderr)
            return 70


def _one_line_warning(prog: str):
    def show(message, category, filename, lineno, file=None, line=None) -> None:
        """Python warnings (numpy's included) as one line, without a source line."""
        print(f"{prog}: warning: {one_line(message)}", file=sys.stderr if file is None else file)
    return show


def _guarded(prog: str, run: Callable[[list[str]], int], argv: list[str],
             memory_hint: str) -> int:
    try:
        return run(argv)
    except (UsageError, SetupError, InputFileError) as err:
        print(f"{prog}: error: {one_line(err)}", file=sys.stderr)
        return 2
    except MemoryError as err:
        print(f"{prog}: error: not enough memory ({type(err).__name__}); {memory_hint}",
              file=sys.stderr)
        return 2
    except RuntimeError as err:  # torch.OutOfMemoryError is one
        if type(err).__name__ != "OutOfMemoryError" and "allocate" not in str(err):
            raise
        print(f"{prog}: error: not enough memory to allocate the image or a chunk; "
              f"{memory_hint}", file=sys.stderr)
        return 2
    except OSError as err:
        name = f" {err.filename}:" if getattr(err, "filename", None) else ""
        print(one_line(f"{prog}: error:{name} {err.strerror or err}"), file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return 130
    except Terminated as err:  # SIGTERM while an output was written: nothing half-written
        print(f"{prog}: {one_line(err)}", file=sys.stderr)
        return 143
