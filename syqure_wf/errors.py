"""Errors a user sees as one line. Anything else is a bug."""


class SyqureError(Exception):
    """A failure with a message fit for one line on stderr."""

    exit_code = 1


class ConfigError(SyqureError):
    """Bad input caught before anything starts."""

    exit_code = 2


class FramingError(SyqureError):
    """The local party's byte stream does not fit the chosen framing."""


class CorruptMessage(SyqureError):
    """A message file that can never become valid."""


class PeerFailed(SyqureError):
    """A peer party failed, vanished or never came up."""


class Stopped(SyqureError):
    """Stopped by a signal (its name in ``signal``)."""

    def __init__(self, message: str, signal: str = "") -> None:
        super().__init__(message)
        self.signal = signal


SIGNAL_EXIT = {"SIGINT": 130, "SIGTERM": 143}  # as a shell reports a process killed by that signal


def one_line(exc: BaseException) -> tuple[str, int] | None:
    """What a command says of a failure the user can cause, and its exit
    code; None for anything else (a bug: its traceback stays)."""
    if isinstance(exc, Stopped):
        return str(exc), SIGNAL_EXIT.get(exc.signal, 1)
    if isinstance(exc, SyqureError):
        return str(exc), exc.exit_code
    if isinstance(exc, KeyboardInterrupt):
        return "interrupted", 130
    if isinstance(exc, OSError):
        return f"{exc.strerror or exc}{f' ({exc.filename})' if exc.filename else ''}", 1
    return None
