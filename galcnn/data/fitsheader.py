"""Header values that any FITS reader accepts, whatever text a file name or a class holds.

A FITS header holds printable ASCII only: a class named ``é`` or holding a control character
made astropy refuse the header (a traceback after every map was computed). Such characters
are written as ``\\xNN``/``\\uNNNN`` escapes, so the value says what it was; values longer
than one card are continued over CONTINUE cards, announced by ``LONGSTRN`` as the FITS
standard's long-string convention asks (fitsverify checks for it).
"""

from __future__ import annotations

import re
import warnings

from astropy.io import fits

__all__ = ["fits_text", "from_fits_text", "header_text", "set_text", "write_cards",
           "valid_cards"]

_ESCAPE = re.compile(r"\\x([0-9a-f]{2})|\\u([0-9a-f]{4})|\\U([0-9a-f]{8})")


def fits_text(value: str) -> str:
    """``value`` in printable ASCII, what a FITS header or text column holds: any other
    character (and the backslash itself) written as a ``\\xNN``, ``\\uNNNN`` or
    ``\\UNNNNNNNN`` escape; :func:`from_fits_text` undoes it."""
    def escaped(char: str) -> str:
        code = ord(char)
        if " " <= char <= "~" and char != "\\":
            return char
        return f"\\x{code:02x}" if code < 0x100 else (f"\\u{code:04x}" if code < 0x10000
                                                      else f"\\U{code:08x}")
    return "".join(escaped(char) for char in str(value))


def from_fits_text(text: str) -> str:
    """The text :func:`fits_text` escaped (a file name read back from a FITS table)."""
    return _ESCAPE.sub(lambda m: chr(int(next(g for g in m.groups() if g), 16)), str(text))


header_text = fits_text


def set_text(header: fits.Header, key: str, value: str, comment: str = "") -> None:
    """``header[key] = value`` in printable ASCII, with ``LONGSTRN`` when the value needs
    CONTINUE cards (and a comment that does not fit is dropped, not the value cut)."""
    text = fits_text(value)
    if len(text) > 68 and "LONGSTRN" not in header:
        header["LONGSTRN"] = ("OGIP 1.0", "long strings continue over CONTINUE cards")
    room = 80 - 10 - max(len(text) + 2, 20) - 3  # a comment that does not fit is left out
    header[key] = (text, fits_text(comment)) if comment and len(comment) <= room else text


def write_cards(header: fits.Header, cards) -> None:
    """Put ``(keyword, value, comment)`` cards into ``header``, text through
    :func:`set_text`."""
    for key, value, comment in cards:
        if isinstance(value, str):
            set_text(header, key, value, comment)
        else:
            header[key] = (value, comment)


#: Keywords the FITS standard and the WCS papers give numeric values (fitsverify checks).
_NUMERIC = re.compile(r"(CRPIX|CRVAL|CDELT|CROTA|CD\d+_|PC\d+_|PV\d+_|EQUINOX|EPOCH|MJD-?OBS|"
                      r"LONPOLE|LATPOLE|RESTFRQ|RESTWAV|BSCALE|BZERO|BLANK)")


def valid_cards(header: fits.Header) -> fits.Header:
    """A copy of ``header`` without the cards a FITS reader refuses (an unparsable value
    such as ``CRPIX1 = 1.2.3``, which astropy would keep as text, an unterminated quote, an
    illegal keyword): what an output copies from its input, so that one malformed card of an
    input never makes the output unwritable or fail fitsverify."""
    kept = fits.Header()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for card in header.cards:
            try:
                card.verify("exception")
                numeric_kind = _NUMERIC.match(card.keyword)
                if numeric_kind and not isinstance(card.value, (int, float)):
                    continue
            except Exception:  # noqa: BLE001  astropy's verify raises several kinds
                continue
            kept.append(card, end=True)
    return kept
