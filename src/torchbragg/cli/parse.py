"""Scan a nanoBragg command line exactly as the C program does, with clear errors.

The C program applies every matching pattern to every argument that starts with ``-`` and
converts values with ``atof``/``atoi``, which read ``"abc"`` as 0 and never complain. Here:

* the most specific matching pattern (the longest) is the option the user meant; its values
  must be numbers where numbers are expected, and must be present;
* other patterns that also match (``-misset_seed`` also matching ``-misset``) are applied as the
  C program applies them, with C's lenient conversion, and reported as warnings when they
  change anything;
* an argument that matches no pattern, or a stray value no option reads, is an error naming
  the nearest real option, unless ``--allow-unknown`` turns these errors into warnings.
"""

from __future__ import annotations

import copy
import difflib
import math
import re
from dataclasses import dataclass, field

from torchbragg.cli.options import (
    INPUT_OPTIONS,
    OUTPUT_OPTIONS,
    RULES,
    UNUSED_BY_C,
    CState,
    Rule,
    apply_output_options,
)

_C_NUMBER = re.compile(r"^\s*[+-]?(\d+\.?\d*([eE][+-]?\d+)?|\.\d+([eE][+-]?\d+)?|inf|nan)",
                       re.IGNORECASE)
_C_INT = re.compile(r"^\s*[+-]?\d+")


class UsageError(ValueError):
    """A command line the program cannot run; ``str()`` is one line for the user."""


@dataclass
class ParsedArgs:
    """The C variables after the scan plus what the scan noticed.

    Attributes
    ----------
    state:
        nanoBragg's variables (SI units) as the C scan leaves them.
    warnings:
        torchbragg's warnings about the command line (printed on stderr).
    messages:
        Lines the C program prints while reading SMV headers.
    extensions:
        torchbragg-only settings given with ``--name value`` or ``--name=value``.
    """

    state: CState
    warnings: list[str] = field(default_factory=list)
    extensions: dict = field(default_factory=dict)
    messages: list[str] = field(default_factory=list)


def c_atof(text: str) -> float:
    """Convert like C's ``atof``: the longest numeric prefix, 0.0 when there is none."""
    m = _C_NUMBER.match(text)
    return float(m.group(0)) if m else 0.0


def c_atoi(text: str) -> int:
    """Convert like C's ``atoi``: the leading integer, 0 when there is none.

    glibc's atoi is ``(int) strtol``: beyond a long it saturates, and the cast keeps the low
    32 bits (two's complement), as on x86-64 Linux.
    """
    m = _C_INT.match(text)
    if not m:
        return 0
    value = max(-(2**63), min(2**63 - 1, int(m.group(0))))
    return (value + 2**31) % 2**32 - 2**31


def is_number(text: str) -> bool:
    """Return True if ``text`` is a complete decimal number (a value, not an option)."""
    try:
        float(text)
    except ValueError:
        return False
    return True


_PLAIN_INT = re.compile(r"^[+-]?\d+$", re.ASCII)


def strict_value(option: str, kind: str, text: str) -> float | int | str:
    """A value the user meant: a finite number (an integer as C's atoi reads it).

    A whole number written otherwise than as plain digits where an integer is expected is
    read as the C program reads it (the leading integer: '1e9' is 1), and
    :func:`integer_note` says so; a fraction there is an error.
    """
    if kind == "s":
        return text
    what = "an integer" if kind == "i" else "a finite number"
    try:
        # C reads ASCII digits only, and atof stops at a '_' that Python's float would skip
        value = float(text) if text.isascii() and "_" not in text else math.nan
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or (kind == "i" and value != int(value)):
        raise UsageError(f"option {option}: expected {what}, got '{text}'")
    return c_atoi(text) if kind == "i" else value


def integer_note(option: str, kinds: str, texts: list[str]) -> str | None:
    """A warning when an integer value is written so that atoi reads less than it says."""
    if option.startswith("-trace_pixel"):
        return None  # torchbragg's own option: no C reading to follow
    for kind, text in zip(kinds, texts, strict=True):
        if kind != "i":
            continue
        if _PLAIN_INT.match(text) and c_atoi(text) != int(text):
            return (f"WARNING: option {option}: {text} does not fit nanoBragg's 32-bit int and "
                    f"is read as {c_atoi(text)} (C keeps the low 32 bits), and so does this run")
        if not _PLAIN_INT.match(text) and c_atoi(text) != int(float(text)):
            return (f"WARNING: option {option}: '{text}' is read as {c_atoi(text)}, not "
                    f"{int(float(text))}: nanoBragg reads integers by their leading digits "
                    f"(atoi), and so does this run; write {int(float(text))} if you mean it")
    return None


def _lenient(kind: str, text: str) -> float | int | str:
    return text if kind == "s" else (c_atoi(text) if kind == "i" else c_atof(text))


def _cell_values(argv: list[str], i: int, strict: bool) -> list[float]:
    """Read up to six cell values after ``-cell``, stopping at an argument starting with '-'."""
    values = []
    for text in argv[i + 1 : i + 7]:
        if text.startswith("-"):
            break
        values.append(strict_value("-cell", "f", text) if strict else c_atof(text))
    if strict and not values:
        raise UsageError("option -cell: expected a b c [alpha beta gamma], got no values")
    return values


def _misset_values(argv: list[str], i: int, strict: bool) -> list | None:
    """``-misset random`` or ``-misset x y z``; None when C would skip the rule."""
    rest = argv[i + 1 :]
    if rest and "rand" in rest[0]:
        return ["random"]
    if len(rest) < 3:
        if strict:
            raise UsageError("option -misset: expected 'random' or three angles in degrees")
        return None
    return [(strict_value("-misset", "f", t) if strict else c_atof(t)) for t in rest[:3]]


def _values(rule: Rule, argv: list[str], i: int, strict: bool) -> list | None:
    """Values for ``rule`` at ``argv[i]``; None where the C program skips the rule."""
    token = argv[i]
    if rule.pattern == "-cell":
        return _cell_values(argv, i, strict)
    if rule.pattern == "-misset":
        return _misset_values(argv, i, strict)
    if rule.pattern == "-detector_abs":
        if i + 1 >= len(argv):
            raise UsageError("option -detector_abs: expected an attenuation depth in um or 'inf'")
        text = argv[i + 1]
        if "inf" in text:
            return ["inf"]
        return [strict_value(token, "f", text) if strict else c_atof(text)]
    n = max(rule.nargs, 0)
    if rule.pattern == "-curved_det":
        n = 1  # the C program wants an argument after it, though it reads none
    if i + n >= len(argv):
        if strict and rule.nargs > 0:
            raise UsageError(f"option {token}: expected {rule.nargs} value(s), got "
                             f"{len(argv) - i - 1}")
        return None
    if rule.nargs <= 0:
        return []
    texts = argv[i + 1 : i + 1 + n]
    kinds = _kinds(rule, n)
    if strict:
        return [strict_value(token, k, t) for k, t in zip(kinds, texts, strict=True)]
    return [_lenient(k, t) for k, t in zip(kinds, texts, strict=True)]


_CELL_COUNTS = ("-N", "-Na", "-Nb", "-Nc")
_DETPIXELS = ("-detpixels", "-detpixels_f", "-detpixels_x", "-detpixels_s", "-detpixels_y")


def value_note(pattern: str, values: list, sized: bool = False) -> str | None:
    """A warning for a value nanoBragg accepts but probably not as the user meant, or None.

    ``sized``: the command gives a crystal size, which sets the cell counts instead.
    """
    first = values[0] if values else None
    if pattern in _DETPIXELS and first == 0:  # negative counts are an error later
        return (f"{pattern} {first}: nanoBragg then sizes the detector from -detsize "
                "(default 102.4 mm) instead, and so does this run")
    if pattern in _CELL_COUNTS and first <= 0 and not sized:
        return f"{pattern} {first}: nanoBragg uses one unit cell there, and so does this run"
    if pattern == "-cell" and len(values) in (1, 2, 4, 5):
        return (f"-cell with {len(values)} value(s): nanoBragg takes b and c equal to a and "
                "angles of 90 degrees for the ones missing, and so does this run")
    if pattern == "-pivot" and "sample" not in first and "beam" not in first:
        return (f"-pivot {first}: neither 'sample' nor 'beam'; nanoBragg keeps the "
                "convention's pivot, and so does this run")
    if pattern == "-polar" and abs(first) > 1:
        return (f"-polar {first}: a Kahn factor outside -1..1 can make the polarization "
                "factor negative; nanoBragg uses it as given, and so does this run")
    if pattern in ("-fluence", "-flux") and first < 0:
        return f"{pattern} {first} is negative: the image will be negative, as in nanoBragg"
    if pattern == "-roi" and (values[0] > values[1] or values[2] > values[3]):
        return (f"-roi {' '.join(str(v) for v in values)}: a minimum above its maximum "
                "selects no pixel; the image will be all zero, as in nanoBragg")
    return None


def _sized(argv: list[str]) -> bool:
    """Whether the command gives a crystal size (which then sets the cell counts)."""
    return any(a.startswith(("-xtal_size", "-sample_", "-xtal_x", "-xtal_y", "-xtal_z",
                             "-xtal_thick")) for a in argv)


def _kinds(rule: Rule, n: int) -> str:
    """The kind ('i', 'f', 's') of each of the ``n`` values of ``rule``."""
    return rule.kinds if len(rule.kinds) == n else rule.kinds[0] * n


def _consumed(rule: Rule, values: list) -> int:
    """How many arguments after the option belong to it."""
    if rule.pattern == "-curved_det":
        return 0
    return len(values)


def _same(x: object, y: object) -> bool:
    return x == y or (isinstance(x, float) and isinstance(y, float) and x != x and y != y)


def _changed_fields(before: CState, after: CState) -> list[str]:
    return [k for k in vars(before) if not _same(getattr(before, k), getattr(after, k))]


def _side_effect_warning(token: str, side: Rule, state: CState, values: list,
                         texts: list[str]) -> str | None:
    """Describe a pattern that matched by accident and changes something, or None."""
    with_side = copy.deepcopy(state)
    side.apply(with_side, values)
    if not _changed_fields(state, with_side):
        return None
    read = " ".join([side.pattern, *texts])
    return (f"WARNING: {token} also matches nanoBragg's option {side.pattern} (options are "
            f"matched by substring), so this run also applies '{read}' as nanoBragg does")


def suggest(token: str, names: list[str] | None = None) -> str:
    """The real option nearest to an unknown one, as ' (did you mean -x?)' or ''.

    An option that starts with the unknown text wins (``-hdiv`` -> ``-hdivrange``), then the
    closest spelling; ``names`` are the options to choose from (default: nanoBragg's).
    """
    names = sorted(set(r.pattern for r in RULES) if names is None else set(names))
    close = [n for n in names if n.startswith(token) and n != token][:1]
    close = close or difflib.get_close_matches(token, names, n=1, cutoff=0.5)
    return f" (did you mean {close[0]}?)" if close else ""


# torchbragg's own options and how many values each takes (given as --name value or
# --name=value); nanoBragg's single-dash options keep the C program's parsing
OWN_OPTIONS = {"--allow-unknown": 0, "--dtype": 1, "--device": 1, "--memory-budget-mb": 1,
               "--help": 0, "--version": 0, "--kernel": 1, "--compile": 0,
               "--stale-phi0": 0, "--debug": 0,
               **{option.name: 1 for option in OUTPUT_OPTIONS + INPUT_OPTIONS}}
HELP_TOKENS = ("-h", "-help", "--help")


def early_exit(argv: list[str]) -> str | None:
    """``"help"`` or ``"version"`` when the command line asks for one (the first wins).

    ``-h``, ``-help`` and ``--help`` ask for the usage text and ``--version`` for the version,
    anywhere on the command line and only as whole arguments: ``-hkl``, ``-hdivrange`` and
    the other options starting with ``-h`` are untouched. (nanoBragg matches no pattern for
    ``-h`` and prints its usage only when the structure factors or the cell are missing.)
    """
    for token in argv:
        if token in HELP_TOKENS:
            return "help"
        if token == "--version":
            return "version"
    return None


def _own_option(argv: list[str], i: int, options: dict, program: str
                ) -> tuple[str, str | bool, int]:
    """Read the program's own option at ``argv[i]``: (name, value, arguments it takes).

    ``options`` maps each ``--name`` to how many values it takes (0 or 1). A flag's value is
    True; an option with a value reads it after ``=`` or from the next argument, which must
    not start with ``-``.
    """
    token = argv[i]
    name, equals, value = token.partition("=")
    if name not in options:
        raise UsageError(f"unknown option {name}; {program}'s own options are "
                         + ", ".join(options))
    if not options[name]:
        if equals:
            raise UsageError(f"option {name} takes no value, got '{token}'")
        return name, True, 1
    if equals:
        if not value:
            raise UsageError(f"option {name}: expected a value after '='")
        return name, value, 1
    if i + 1 >= len(argv) or argv[i + 1].startswith("-"):
        raise UsageError(f"option {name}: expected a value")
    return name, argv[i + 1], 2


def split_own_options(argv: list[str], options: dict | None = None,
                      program: str = "torchbragg") -> tuple[list[str], dict]:
    """Split off a program's own ``--name [value]`` and ``--name=value`` options.

    Returns the other arguments in order and {name without dashes, '-' as '_': value};
    ``options`` defaults to torchbragg's :data:`OWN_OPTIONS`.
    """
    options = OWN_OPTIONS if options is None else options
    rest, ext = [], {}
    i = 0
    while i < len(argv):
        if argv[i].startswith("--"):
            name, value, taken = _own_option(argv, i, options, program)
            ext[name[2:].replace("-", "_")] = value
            i += taken
            continue
        rest.append(argv[i])
        i += 1
    return rest, ext


def _scan_token(argv: list[str], i: int, st: CState, warnings: list[str]) -> int | None:
    """Apply every rule matching ``argv[i]``; return how many values it takes, None if none."""
    token = argv[i]
    matched = [r for r in RULES if r.matches(token)]
    if not matched:
        return None
    if max(matched, key=lambda r: len(r.pattern)).pattern in UNUSED_BY_C:
        warnings.append(f"WARNING: {token} is read by nanoBragg but does not change the "
                        "image; accepted and ignored")
    primary = max(matched, key=lambda r: len(r.pattern))
    taken = 0
    for rule in matched:
        is_primary = rule is primary
        values = _values(rule, argv, i, strict=is_primary)
        if values is None:
            if rule.pattern == "-curved_det":
                warnings.append("WARNING: -curved_det is the last argument; nanoBragg ignores "
                                "it there, and so does this run")
            continue
        if is_primary:
            taken = _consumed(rule, values)
            note = integer_note(token, _kinds(rule, taken), argv[i + 1:i + 1 + taken]) \
                if taken and rule.nargs > 0 else None
            sized = rule.pattern in _CELL_COUNTS and _sized(argv)  # only where it matters
            surprise = value_note(rule.pattern, values, sized) if values else None
            warnings.extend(n for n in (note, surprise and f"WARNING: {surprise}") if n)
        else:
            note = _side_effect_warning(token, rule, st, values,
                                        argv[i + 1:i + 1 + _consumed(rule, values)])
            if note:
                warnings.append(note)
        rule.apply(st, values)
        if rule.stop:
            break
    return taken


def _prescan_headers(argv: list[str], st: CState, read_headers) -> list[str]:
    """Find ``-img`` and ``-mask`` first: their headers are defaults the options override."""
    for i, token in enumerate(argv[:-1]):
        if token.startswith("-") and "-img" in token:
            st.img_path = argv[i + 1]
        if token.startswith("-") and "-mask" in token:
            st.mask_path = argv[i + 1]
    return [] if read_headers is None else read_headers(st)


def values_after(argv: list[str], i: int) -> int:
    """Number of plain values following position ``i`` (the likely values of an option)."""
    n = 0
    while i + 1 + n < len(argv) and (not argv[i + 1 + n].startswith("-")
                                     or is_number(argv[i + 1 + n])):
        n += 1
    return n


def parse_args(argv: list[str], read_headers=None) -> ParsedArgs:
    """Scan ``argv`` (without the program name) as nanoBragg does.

    ``read_headers(state) -> lines``, when given, is called after ``-img``/``-mask`` are found
    and before the scan, so that SMV header values act as defaults, as in the C program; the
    lines it returns are kept in :attr:`ParsedArgs.messages`.

    Raises
    ------
    UsageError
        For a malformed value, a missing value, or (unless ``--allow-unknown``) an option
        the C program would silently ignore.
    """
    argv, ext = split_own_options(list(argv))
    st = CState()
    apply_output_options(st, ext)
    messages = _prescan_headers(argv, st, read_headers)
    warnings: list[str] = []
    problems = scan_arguments(argv, lambda args, i: _scan_token(args, i, st, warnings),
                              _unknown_option)
    report_problems(problems, ext, warnings)
    _warn_surprises(st, warnings)
    return ParsedArgs(state=st, warnings=warnings, extensions=ext, messages=messages)


def scan_arguments(argv: list[str], apply, unmatched) -> list[str]:
    """Walk ``argv`` as the C programs do; return the arguments no option reads.

    ``apply(argv, i)`` reads the option at ``i`` and returns how many values it took, or None
    when no option matches; ``unmatched(argv, i, problems)`` then deals with an unmatched
    option (not a value of the previous one, not a number) and returns how many of the
    following arguments are its values. A value may start with '-' (a file name).
    """
    problems: list[str] = []
    owned = 0  # arguments still belonging to the previous option
    for i, token in enumerate(argv):
        value_position = owned > 0
        if owned > 0:
            owned -= 1
            if not token.startswith("-"):
                continue
        if not token.startswith("-"):
            problems.append(f"stray argument '{token}' is not read by any option")
            continue
        taken = apply(argv, i)
        if taken is None:
            if not (value_position or is_number(token)):
                owned = unmatched(argv, i, problems)
            continue
        owned = taken
    return problems


def _unknown_option(argv: list[str], i: int, problems: list[str]) -> int:
    problems.append(f"unknown option {argv[i]}{suggest(argv[i])}")
    return values_after(argv, i)  # its values are not separate problems


def report_problems(problems: list[str], ext: dict, warnings: list[str],
                    program: str = "nanoBragg") -> None:
    """Arguments ``program`` would ignore: an error, or warnings with --allow-unknown."""
    if not problems:
        return
    if ext.get("allow_unknown"):
        warnings.extend(f"WARNING: {p}; ignored as {program} ignores it" for p in problems)
        return
    more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
    raise UsageError(f"{problems[0]}{more}; {program} would silently ignore it. "
                     "Pass --allow-unknown to run anyway")


def _warn_surprises(st: CState, warnings: list[str]) -> None:
    if st.pix0_given is not None:
        warnings.append("WARNING: -pix0_vector sets the custom convention but nanoBragg then "
                        "recomputes pix0 from the beam centre and distance; the given vector "
                        "is not used (as in nanoBragg)")
