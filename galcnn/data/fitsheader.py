"""Header values that any FITS reader accepts, whatever text a file name or a class holds.

A FITS header holds printable ASCII only: a class named ``é`` or holding a control character
made astropy refuse the header (a traceback after every map was computed). Such characters
are written as ``\\xNN``/``\\uNNNN`` escapes, so the value says what it was; values longer
than one card are continued over CONTINUE cards, announced by ``LONGSTRN`` as the FITS
standard's long-string convention asks (fitsverify checks for it).
"""

from __future__ import annotations

from astropy.io import fits

__all__ = ["header_text", "set_text"]


def header_text(value: str) -> str:
    """``value`` in printable ASCII: other characters escaped as in Python source."""
    return "".join(char if " " <= char <= "~" else
                   (f"\\x{ord(char):02x}" if ord(char) < 0x100 else f"\\u{ord(char):04x}")
                   for char in str(value))


def set_text(header: fits.Header, key: str, value: str, comment: str = "") -> None:
    """``header[key] = value`` in printable ASCII, with ``LONGSTRN`` when the value needs
    CONTINUE cards (and a comment that does not fit is dropped, not the value cut)."""
    text = header_text(value)
    if len(text) > 68 and "LONGSTRN" not in header:
        header["LONGSTRN"] = ("OGIP 1.0", "long strings continue over CONTINUE cards")
    header[key] = (text, header_text(comment)) if comment else text
