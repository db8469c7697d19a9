"""The runtime's error type: every failure the CLI reports carries a message meant for users."""


class RuntimeFailure(Exception):
    """A failure of a runtime operation, reported to the caller as one clear message."""
