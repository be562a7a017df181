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
