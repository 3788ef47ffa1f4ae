"""The one exception type that reaches users: the CLI prints it as one line and exits 2."""


class EnsplitError(Exception):
    """Bad input or an impossible request, explained in one line (no traceback)."""
