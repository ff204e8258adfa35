"""Domain errors: each message names the problem and the fix, for artists and the CLI."""


class PhysFaceError(Exception):
    """Base of every error PhysFace raises on purpose (never a bare traceback)."""


class DataError(PhysFaceError):
    """The data folder or a file in it is missing, truncated or not what was expected."""


class ControlError(PhysFaceError):
    """A control value (activation, jaw pose, transform) is NaN, infinite or unknown."""


class CacheError(PhysFaceError):
    """The cache folder is a file, cannot be created or is not writable."""
