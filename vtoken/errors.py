"""Error types. Every failure a user can cause is one of these; the CLI turns them into a
one-line message and the exit code below. Nothing here imports torch or numpy."""


class VtokenError(Exception):
    """Base class: a failure with a message meant for the user."""

    exit_code = 1


class UsageError(VtokenError):
    """The call itself is wrong (bad option value, conflicting options)."""

    exit_code = 2


class InputError(VtokenError):
    """The input media cannot be used (not a video, no video stream, zero frames...)."""

    exit_code = 1


class OutputError(VtokenError):
    """The output cannot be written (exists without overwrite, unwritable, disk full)."""

    exit_code = 1


class StreamError(VtokenError):
    """A .mvt file is malformed: bad magic, unsupported version, header out of limits."""

    exit_code = 3


class UnsupportedVersionError(StreamError):
    """The file was written by a newer, incompatible major version of the format."""


class CorruptChunkError(StreamError):
    """A chunk failed its CRC or does not parse. `chunk` is its index (or None)."""

    exit_code = 4

    def __init__(self, message: str, chunk: int | None = None):
        super().__init__(message)
        self.chunk = chunk


class ModelError(VtokenError):
    """A model cannot be found, or its weights do not match the recorded sha256."""

    exit_code = 5
