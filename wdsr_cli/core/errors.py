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
    """Ctrl-C, reported as one line saying what was finished; exit code 130."""

    exit_code = 130
