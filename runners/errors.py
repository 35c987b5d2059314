"""The errors a user can cause, at the bottom of the layers (tests/test_layers.py): every module may raise them, and
the command line prints them as one sentence."""

from __future__ import annotations


class PairbenchError(Exception):
    """An error a user can cause; the CLI prints its message as one sentence and exits non-zero."""


class UnsupportedError(PairbenchError):
    """A combination a framework truly lacks here (a run then records status "unsupported")."""


class AbsentError(PairbenchError):
    """What a run needs is not on this machine: its device, a collective backend, a framework or a runtime (a run
    then records status "unavailable")."""


def first_line(text: str) -> str:
    """The first line of an error message that says something: MindSpore's messages open with a rule of dashes."""
    return next((ln.strip() for ln in str(text).splitlines() if ln.strip().strip("-=*#_ ")), "")
