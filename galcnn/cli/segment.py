"""``galcnn segment``: parse, call :func:`galcnn.stages.segment.segment`, report."""

from __future__ import annotations

import sys

import click

from galcnn.choices import TABLE_FORMATS
from galcnn.cli.main import EXIT_SOME_FAILED, report_failures, run_with_progress, stdout
from galcnn.cli.options import (batch_size_option, device_option, hdu_option, inputs_argument,
                                no_amp_option, overwrite_option)


@click.command("segment")
@click.argument("model", type=click.Path(exists=True))
@inputs_argument
@click.option("-o", "--out-dir", required=True, type=click.Path(file_okay=False),
              help="Directory for <name>.seg.fits, <name>.cat.csv and segment.csv (created).")
@hdu_option("Image HDU to segment [default: every image HDU of each file].")
@click.option("--tile", type=click.IntRange(8), default=512, show_default=True,
              help="Core tile size in pixels (memory per tile; the result does not depend "
                   "on it).")
@click.option("--halo", type=click.IntRange(0), default=None,
              help="Context around each tile [default: the U-Net's receptive radius, exact].")
@click.option("--threshold", type=click.FloatRange(0, 1, min_open=True, max_open=True),
              default=None, help="Foreground where 1 - p(background) >= this [default: the "
                                 "most probable class].")
@click.option("--min-area", type=click.IntRange(1), default=5, show_default=True,
              help="Drop objects with fewer pixels.")
@click.option("--deblend/--no-deblend", default=True, show_default=True,
              help="Split touching objects where their flux has separate peaks (photutils "
                   "multi-threshold deblending of each footprint).")
@click.option("--deblend-contrast", type=click.FloatRange(0, 1), default=0.02,
              show_default=True, help="Share of a footprint's flux a peak needs to become its "
                                      "own object (0 splits at every peak, 1 never).")
@click.option("--tta/--no-tta", default=True, show_default=True,
              help="Average the maps over the model's symmetry group (the validated model); "
                   "--no-tta runs the bare U-Net, faster.")
@click.option("--catalogue-format", type=click.Choice(TABLE_FORMATS), default="csv",
              show_default=True, help="Catalogue file: <name>.cat.csv, or a FITS binary table "
                                      "<name>.cat.fits.")
@click.option("--overlay", is_flag=True, help="Also write <name>.png: image, outlines, boxes.")
@overwrite_option("Redo inputs whose output exists [default: skip them, so a run can "
                  "resume].")
@batch_size_option(None, "Tiles per forward pass [default: 1 on a CPU, 8 on a GPU].")
@device_option
@no_amp_option
def command(model, inputs, out_dir, hdu, tile, halo, threshold, min_area, deblend,
            deblend_contrast, tta,
            catalogue_format, overlay, overwrite, batch_size, device, no_amp):
    """U-Net probability maps, masks, object label maps and catalogues for INPUTS.

    \b
    Each image HDU gives OUT_DIR/<name>.seg.fits (the input header and WCS; HDUs PROB, MASK,
    LABELS, COVERAGE; provenance keywords) and <name>.cat.csv (one row per object:
    id, x, y, ra, dec, area, bbox, flux, predicted, p_<class>...). The input is never
    changed. Exit status 0: all inputs segmented; 3: some failed (see segment.csv).

    \b
    Examples:
      galcnn segment runs/unet sample_data/field.fits.fz --hdu SCI -o seg/ --overlay
      galcnn segment runs/unet survey/*.fits.fz -o seg/ --tile 512 --threshold 0.5
    """
    from galcnn.stages.segment import SegmentOptions, segment

    options = SegmentOptions(tile=tile, halo=halo, batch_size=batch_size, threshold=threshold,
                             min_area=min_area, deblend=deblend,
                             deblend_contrast=deblend_contrast, tta=tta, hdu=hdu,
                             catalogue_format=catalogue_format, overlay=overlay,
                             overwrite=overwrite, device=device, amp=not no_amp)
    result = run_with_progress("segment", "files", segment, model, list(inputs), out_dir, options)
    report_failures("segment", result.failures, "see segment.csv")
    rate = result.megapixels / max(result.elapsed_s, 1e-9)
    stdout().print(f"Segmented {result.n_images} image(s), {result.megapixels:.2f} Mpix, "
                   f"{result.n_objects} objects in {result.elapsed_s:.1f} s ({rate:.2f} Mpix/s) "
                   f"into {result.out_dir}; skipped (existing): {result.n_skipped}; "
                   f"failed: {result.n_failed}")
    if result.n_failed:
        sys.exit(EXIT_SOME_FAILED)
