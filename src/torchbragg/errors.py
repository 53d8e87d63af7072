"""Errors that stop a run before rendering, with a one-line message for the user."""


class SetupError(ValueError):
    """An impossible or incomplete simulation; ``str()`` is one line for the user."""
