"""The one exception type a user sees: a problem they can fix, told in one line.

Every stage raises a subclass of :class:`GalcnnError` for a fatal problem (bad options, no
usable input, an output that exists); the command line prints its message on one line and
exits with status 1. Problems with single inputs are not exceptions: they are reported per
file and the run goes on.
"""

from __future__ import annotations

__all__ = ["GalcnnError"]


class GalcnnError(ValueError):
    """A fatal, user-fixable problem; the message is one line that names what is wrong."""
