"""Errors that stop a run before rendering, with a one-line message for the user."""


class SetupError(ValueError):
    """An impossible or incomplete simulation; ``str()`` is one line for the user."""


def one_line(text: object) -> str:
    """``text`` on one line: newlines and other control characters escaped."""
    return "".join(c if c.isprintable() or c == " " else repr(c)[1:-1] for c in str(text))
