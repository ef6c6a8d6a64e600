"""The ``.seg.fits`` products: header, WCS, extensions."""

from __future__ import annotations

import os

import numpy as np
from astropy.io import fits
from astropy.table import Table

from galcnn.stages.segment import SegmentOptions, segment

from helpers import write_fits

def test_segment_output_keeps_header_and_wcs(unet, field_file, tmp_path):
    result = segment(unet, [field_file], str(tmp_path / "seg"), SegmentOptions(tile=64))
    assert result.n_images == 1 and result.failures == []
    out = str(tmp_path / "seg" / "field.seg.fits")
    with fits.open(out) as hdul, fits.open(field_file) as original:
        assert [h.name for h in hdul] == ["PRIMARY", "PROB", "MASK", "LABELS", "COVERAGE"]
        head = hdul[0].header
        assert head["OBJECT"] == "galcnn simulated field" and head["CRVAL1"] == 150.1
        assert head["TILE"] == 64 and head["HALO"] >= head["RECEPT"] and len(head["MODELSHA"]) == 64
        prob = hdul["PROB"].data
        assert prob.shape == (6, 200, 150) and hdul["PROB"].header["CLASS5"] == "other"
        np.testing.assert_allclose(prob.sum(0), 1.0, atol=1e-4)
        assert hdul["LABELS"].data.dtype.kind == "i" and hdul["LABELS"].data.shape == (200, 150)
        assert hdul["COVERAGE"].data.min() >= 1
        assert hdul["MASK"].header["CTYPE1"] == original[0].header["CTYPE1"]
        np.testing.assert_array_equal(original[0].data, fits.getdata(field_file))


def test_keywords_describe_this_output(unet, tmp_path):
    from galcnn.checkpoint import load_model

    image = np.random.default_rng(0).normal(size=(40, 50)).astype(np.float32)
    header = fits.Header({"CLASSES": "star,galaxy", "OBJECT": "kept"})
    source = write_fits(tmp_path / "deep" / "folder" / "in.fits", image, header=header)
    result = segment(unet, [source], str(tmp_path / "seg"))
    primary = fits.getheader(result.outputs[0])
    assert primary["CLASSES"] == ",".join(load_model(unet).card.classes)
    assert primary["SRCFILE"] == os.path.abspath(source)
    assert primary["MODEL"] == os.path.join(os.path.abspath(unet), "best.pt")
    assert primary["OBJECT"] == "kept"


def _objects(shape, boxes, classes):
    """A label map of rectangles and the catalogue rows ``overlay_figure`` reads."""
    labels = np.zeros(shape, np.int32)
    rows = []
    for number, ((y0, y1, x0, x1), name) in enumerate(zip(boxes, classes), start=1):
        labels[y0:y1, x0:x1] = number
        rows.append((number, name, x0, y0, x1 - 1, y1 - 1))
    table = Table(rows=rows, names=("id", "predicted", "bbox_xmin", "bbox_ymin", "bbox_xmax",
                                    "bbox_ymax"))
    return labels, table


def test_overlay_has_a_class_legend_and_numbers_inside_the_frame():
    from galcnn.plots import pyplot
    from galcnn.stages.segment.output import overlay_figure

    labels, table = _objects((200, 300), [(10, 30, 10, 40), (170, 200, 270, 300),
                                          (90, 110, 140, 160)],
                             ["spiral_cw", "elliptical", "spiral_cw"])
    image = np.random.default_rng(0).normal(size=labels.shape)
    foreground = ["edge_on", "elliptical", "spiral_acw", "spiral_cw", "other"]
    fig = overlay_figure(image, labels, table, foreground, "field.fits [HDU 1]")
    axis = fig.axes[0]
    legend = [t.get_text() for t in axis.get_legend().get_texts()]
    assert legend == ["edge_on (0)", "elliptical (1)", "spiral_acw (0)", "spiral_cw (2)",
                      "other (0)"]
    texts = {t.get_text(): t for t in axis.texts}
    assert set(texts) == {"1", "2", "3"}
    fig.canvas.draw()
    frame = axis.get_window_extent()
    for text in texts.values():  # the object in the top-right corner included
        box = text.get_window_extent()
        assert frame.x0 <= box.x0 and box.x1 <= frame.x1 + 0.5
        assert frame.y0 <= box.y0 and box.y1 <= frame.y1 + 0.5
    # outlines in the colour of each object's class, the same colour for the same class
    from matplotlib.colors import to_hex

    colour = {name: to_hex(text.get_color()) for name, text in texts.items()}
    assert colour["1"] == colour["3"] != colour["2"]
    assert "3 objects" in axis.get_title()
    small_font = texts["1"].get_fontsize()
    pyplot().close(fig)

    big_labels, big_table = _objects((1600, 1600), [(10, 30, 10, 40)], ["edge_on"])
    assert small_font >= 9  # readable on a small field (it was 5.9 pt on a 512 px one)
    fig = overlay_figure(np.zeros(big_labels.shape), big_labels, big_table, foreground, "big")
    assert fig.axes[0].texts[0].get_fontsize() < small_font  # text scales with the image
    pyplot().close(fig)


def test_overlay_outlines_take_their_objects_colour_and_the_legend_sits_under_the_image():
    """On a 512 px field the outlines were one pixel wide and their outer side took the
    first class's colour; the legend floated under an empty band on a wide image."""
    from matplotlib.colors import to_rgba

    from galcnn.plots import pyplot
    from galcnn.stages.segment.output import overlay_figure

    labels, table = _objects((300, 512), [(100, 140, 100, 140), (200, 240, 300, 340)],
                             ["spiral_cw", "other"])
    foreground = ["edge_on", "elliptical", "spiral_acw", "spiral_cw", "other"]
    fig = overlay_figure(np.zeros(labels.shape), labels, table, foreground, "wide")
    axis = fig.axes[0]
    overlay = axis.images[1].get_array()
    outside = overlay[99, 120]  # the row just outside the first object: its colour
    inside = overlay[100, 120]
    assert outside[3] > 0 and np.allclose(outside, inside)
    assert np.allclose(overlay[199, 320], to_rgba((0.0, 0.9, 1.0)))  # other: cyan
    fig.canvas.draw()
    frame, legend = axis.get_window_extent(), axis.get_legend().get_window_extent()
    assert 0 <= frame.y0 - legend.y1 < 0.05 * frame.height
    pyplot().close(fig)
