"""What defines a ``segment`` run."""

from __future__ import annotations

from dataclasses import dataclass

from galcnn.choices import TABLE_FORMATS, unknown_choice
from galcnn.errors import GalcnnError, check_bounds, option_error

__all__ = ["SegmentOptions", "SegmentError"]


class SegmentError(GalcnnError):
    """Nothing can be segmented (bad model or options); one line."""


@dataclass
class SegmentOptions:
    tile: int = 512
    """Core tile size in pixels (rounded up to the U-Net's down-sampling factor). Measured on
    2 CPU cores (1024 px field, depth-3 U-Net pooled over D4): 512 gave 0.18 Mpix/s, 256 gave
    0.12 (more halo per pixel), 1024 0.15."""
    halo: int | None = None
    """Context on each side; None: the receptive radius (exact, tile-size independent)."""
    batch_size: int | None = None
    """Tiles per forward pass; None: 1 on a CPU (measured: 0.18 Mpix/s against 0.16 with 2
    and less memory), 8 on a GPU (not measured here)."""
    threshold: float | None = None
    """A pixel is foreground when 1 - p(background) >= threshold; None: the arg-max class."""
    min_area: int = 5
    deblend: bool = True
    """Split footprints whose flux has separate peaks (:mod:`.deblend`)."""
    deblend_contrast: float = 0.02
    """The share of a footprint's flux a peak needs to become its own object."""
    tta: bool = True
    """Pool over the model's symmetry group (the validated model); False: the bare U-Net."""
    hdu: int | str | None = None
    catalogue_format: str = "csv"
    overlay: bool = False
    overwrite: bool = False
    device: str = "auto"
    amp: bool = True

    def tiles_per_pass(self, device_type: str) -> int:
        if self.batch_size is not None:
            return self.batch_size
        return 8 if device_type == "cuda" else 1

    def check(self) -> None:
        check_bounds(SegmentError, self, (
            ("tile", self.tile >= 8, "at least 8 pixels"),
            ("halo", self.halo is None or self.halo >= 0, ">= 0"),
            ("threshold", self.threshold is None or 0 < self.threshold < 1, "between 0 and 1"),
            ("deblend_contrast", 0 <= self.deblend_contrast <= 1, "between 0 and 1")))
        if self.catalogue_format not in TABLE_FORMATS:
            raise option_error(SegmentError, "catalogue_format", unknown_choice(
                "{option}", self.catalogue_format, TABLE_FORMATS))
