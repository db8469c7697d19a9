"""Compose's error type: a message for stderr and Docker Compose's exit code."""

from __future__ import annotations


class ComposeError(Exception):
    """A failure reported to the user as `message` (exit code `code`, 1 like Docker Compose)."""

    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.code = code


class InvalidValue(ComposeError):
    """A value the model cannot use, at a dotted key path (the loader adds file and line)."""

    def __init__(self, key: str, message: str) -> None:
        super().__init__(f"{key}: {message}" if key else message)
        self.key = key
        self.detail = message
