"""The one exception type a user is meant to see.

Anything raised as ``WdsrError`` is printed by the CLI as a single line
(``error: <message>`` plus ``hint: <hint>`` when there is one) with exit code 2.
Everything else is a bug and shows a traceback only with ``--debug``.
"""

from __future__ import annotations


class WdsrError(Exception):
    """A problem with the user's input or environment, with a hint on how to fix it."""

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message if not self.hint else f"{self.message} ({self.hint})"


class Interrupted(WdsrError):
    """Ctrl-C (or SIGTERM/SIGHUP), reported as one line saying what was finished; exit code
    130 (128 + the signal's number for SIGTERM 143 and SIGHUP 129)."""

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message, hint)
        from .runtime import interruption

        self.exit_code = interruption()[1]


class Stopped(KeyboardInterrupt):
    """SIGTERM or SIGHUP, raised in the main thread (``runtime.stop_on_signals``). It is a
    KeyboardInterrupt so every path that cleans up after Ctrl-C cleans up after these too;
    ``exit_code`` is 128 + the signal's number, as a shell reports a process it ended."""

    def __init__(self, signum: int) -> None:
        import signal

        self.signum = signum
        self.name = signal.Signals(signum).name
        self.exit_code = 128 + signum
        super().__init__(self.name)


class WdsrNote(UserWarning):
    """Something the user should know that does not stop the command (a cache entry that
    failed its check was discarded and is made again). The core says it with
    ``warnings.warn(text, WdsrNote)``; the CLI shows it as one ``warning:`` line (ui.py), a
    library user gets a Python warning."""
