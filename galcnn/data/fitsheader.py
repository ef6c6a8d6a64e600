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

__all__ = ["header_text", "set_text", "valid_cards"]


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
