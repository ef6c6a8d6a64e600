"""The one exception type a user sees: a problem they can fix, told in one line.

Every stage raises a subclass of :class:`GalcnnError` for a fatal problem (bad options, no
usable input, an output that exists); the command line prints its message on one line and
exits with status 1. Problems with single inputs are not exceptions: they are reported per
file and the run goes on.
"""

from __future__ import annotations

import errno
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager

__all__ = ["GalcnnError", "DiskFull", "is_disk_full", "naming_output", "device_failure",
           "option_error", "check_bounds", "as_typed"]


class GalcnnError(ValueError):
    """A fatal, user-fixable problem; the message is one line that names what is wrong."""


OPTION = "{option}"
"""Where an option's name stands in the message of :func:`option_error`."""


def option_error(kind: type[GalcnnError], option: str, message: str) -> GalcnnError:
    """An error of type ``kind`` about one option's value: ``message`` names the option as
    ``{option}``, which the library's message fills with the field's name (``tile``) and the
    command line's (:func:`as_typed`) with its flag (``--tile``), so that each reader sees
    the name they wrote."""
    error = kind(message.replace(OPTION, option))
    error.option, error.template = option, message
    return error


def check_bounds(kind: type[GalcnnError], options: object,
                 checks: tuple[tuple[str, bool, str], ...]) -> None:
    """Raise :func:`option_error` for the first ``(field, within, bounds)`` of ``checks``
    whose value is not within its bounds: "FIELD must be BOUNDS, got VALUE"."""
    for name, within, bounds in checks:
        if not within:
            raise option_error(kind, name, f"{{option}} must be {bounds}, got "
                               f"{getattr(options, name)}")


def as_typed(exc: GalcnnError) -> str:
    """The message of ``exc`` as a command-line user reads it: an option named by its flag."""
    option = getattr(exc, "option", None)
    if option is None:
        return str(exc)
    return exc.template.replace(OPTION, "--" + option.replace("_", "-"))


class DiskFull(GalcnnError):
    """The file system holding an output is full (or the user's quota is spent)."""


_SHORT_WRITE = re.compile(r"\d+ requested and \d+ written|Not enough space on disk")


def is_disk_full(exc: BaseException) -> bool:
    """A full file system (or spent quota): the system's error, or a library's own words
    for a write cut short (numpy's "N requested and M written", astropy's "Not enough space
    on disk")."""
    if not isinstance(exc, OSError):
        return False
    return exc.errno in (errno.ENOSPC, errno.EDQUOT) or \
        (exc.errno is None and bool(_SHORT_WRITE.search(str(exc))))


@contextmanager
def naming_output(path: str, kept: str | Callable[[], str] = "") -> Iterator[None]:
    """Turn a full disk while writing ``path`` into one line that names the output and says
    what was kept (a write error alone names no file); ``kept`` may be a function, asked
    when the disk is full (what is kept then depends on how far the command got)."""
    try:
        yield
    except OSError as exc:
        if not is_disk_full(exc):
            raise
        said = kept() if callable(kept) else kept
        raise DiskFull(f"no space left on device writing {path}" + (f"; {said}" if said else "")
                       ) from None


_GPU_FAULT = re.compile(r"CUDA error|CUBLAS_STATUS|CUDNN_STATUS|cuDNN error|illegal memory "
                        r"access|device-side assert|unspecified launch failure|ECC error")


def device_failure(exc: BaseException, hint: str = "use a smaller --batch-size") -> str | None:
    """One line for a failure of the GPU itself, or None for anything else.

    Out of memory (``hint`` says what to make smaller) stops a run as a whole, whichever
    input was on the device; so does a CUDA fault, after which the process cannot use the GPU
    again: neither is the problem of one input. Read from the exception's type name and text,
    so that no command imports torch to recognise them."""
    if not isinstance(exc, RuntimeError):
        return None
    text = " ".join(str(exc).split())
    if type(exc).__name__ == "OutOfMemoryError" or "out of memory" in text.lower():
        asked = re.search(r"Tried to allocate ([\d.]+ \w+)", text)
        free = re.search(r"total capacity of ([\d.]+ \w+) of which ([\d.]+ \w+) is free", text)
        detail = "; ".join(filter(None, [
            asked and f"it asked for {asked[1]} more",
            free and f"{free[2]} of {free[1]} was free"]))
        return f"the GPU ran out of memory{f' ({detail})' if detail else ''}: {hint}"
    if _GPU_FAULT.search(text):
        return (f"the GPU failed ({text[:160]}); this process cannot use it again: run the "
                "command again, on another GPU if it recurs")
    return None
