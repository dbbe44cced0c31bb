"""One error type for everything a user can get wrong.

The CLI turns a `GroundtuneError` into one line on stderr (`groundtune: error: FILE:LINE: message`)
and a non-zero exit, without a traceback unless `--debug` is given. Code deeper down raises it with
the file and line where the problem is, so the user never has to read Python to find their typo.
"""

from __future__ import annotations

import os


class GroundtuneError(Exception):
    """A problem with the user's input, config or environment (not a bug in groundtune)."""

    exit_code = 2

    def __init__(self, message: str, path: str | os.PathLike | None = None, line: int | None = None):
        self.message = message
        self.path = None if path is None else str(path)
        self.line = line
        super().__init__(str(self))

    def __str__(self) -> str:
        where = ""
        if self.path is not None:
            where = f"{self.path}:{self.line}: " if self.line is not None else f"{self.path}: "
        return f"{where}{self.message}"


class Interrupted(GroundtuneError):
    """Training stopped by Ctrl-C or SIGTERM after saving a checkpoint."""

    exit_code = 130


def redact(text: str) -> str:
    """Remove a Hugging Face token (from the environment) from text that may reach a log or a file."""
    for name in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN"):
        token = os.environ.get(name)
        if token and len(token) >= 4:
            text = text.replace(token, "<redacted>")
    return text
