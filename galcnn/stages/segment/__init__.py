"""``galcnn segment``: U-Net maps, object label maps and catalogues for images of any size.

``options``    :class:`SegmentOptions`
``tiling``     :class:`Segmenter` (the loaded U-Net) and tile-size-independent probability maps
``objects``    a class per pixel, connected objects
``deblend``    touching objects split on their flux (photutils)
``catalogue``  one row per object
``output``     the ``.seg.fits`` products, the catalogue file, the overlay PNG
``run``        :func:`segment` over many inputs, and :func:`segment_image` for one HDU
"""

from galcnn.stages.segment.catalogue import CATALOGUE_COLUMNS
from galcnn.stages.segment.options import SegmentError, SegmentOptions
from galcnn.stages.segment.run import LOG_COLUMNS, SegmentResult, segment, segment_image
from galcnn.stages.segment.tiling import Segmenter

__all__ = ["segment", "segment_image", "Segmenter", "SegmentOptions", "SegmentResult",
           "SegmentError", "CATALOGUE_COLUMNS", "LOG_COLUMNS"]
