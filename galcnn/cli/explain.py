"""``galcnn explain``: parse, call :func:`galcnn.stages.explain.explain`, report."""

from __future__ import annotations

import sys

import click

from galcnn.cli.main import EXIT_SOME_FAILED, report_failures, run_with_progress, stdout
from galcnn.cli.options import (batch_size_option, device_option, hdu_option, inputs_argument,
                                overwrite_option, parse_list, workers_option)


@click.command("explain")
@click.argument("model", type=click.Path(exists=True))
@inputs_argument
@click.option("-o", "--out", "out_dir", required=True, type=click.Path(file_okay=False),
              help="Output directory (written under a temporary name, renamed when complete).")
@click.option("--class", "target", metavar="NAME",
              help="Maps for this class [default: each cutout's predicted class].")
@click.option("--steps", type=click.IntRange(1), default=32, show_default=True,
              help="Integrated gradients: steps from an empty image to the cutout.")
@click.option("--no-png", is_flag=True, help="FITS maps and the index only (for many cutouts).")
@overwrite_option()
@batch_size_option(16, "Cutouts per pass.")
@device_option
@workers_option("Reading processes [default: usable CPUs, one left for the model on CPU].")
@hdu_option("Image HDU (default: the model's rule, first HDU with 2-D/3-D data).")
@click.option("--band-pattern", metavar="PATTERN", help="One file per band (default: the "
                                                        "model's pattern).")
@click.option("--bands", callback=parse_list, metavar="B1,B2,...",
              help="Band order for --band-pattern (default: the model's).")
def command(model, inputs, out_dir, target, steps, no_png, overwrite, batch_size, device,
            workers, hdu, band_pattern, bands):
    """Where in each cutout of INPUTS the classifier MODEL found its class.

    \b
    For each cutout: ID.fits (Grad-CAM and integrated-gradient maps on the cutout's pixel
    grid, its WCS kept, one HDU each; beliefs in the primary header) and ID.png (input,
    Grad-CAM overlay, integrated gradients, beliefs); index.csv lists what was written.
    Exit status 0: every input explained; 3: some inputs failed (index.csv says why);
    2: usage error; 1: nothing could be done.

    \b
    Examples:
      galcnn explain runs/mirabest sample_data/mirabest -o explained/
      galcnn explain runs/gz1 cutouts/ -o mergers/ --class merger --no-png
    """
    from galcnn.stages.explain import ExplainOptions, explain

    options = ExplainOptions(target=target, steps=steps, png=not no_png, batch_size=batch_size,
                             device=device, workers=workers, overwrite=overwrite, hdu=hdu,
                             band_pattern=band_pattern, bands=bands)
    result = run_with_progress("explain", "cutouts", explain,
                               model, list(inputs), out_dir, options)
    report_failures("explain", result.failures, "index.csv")
    stdout().print(f"Explained {result.n_ok} cutouts into {result.out_dir} "
                   f"(index.csv), {result.n_failed} failed ({result.elapsed_s:.1f} s)")
    if result.n_failed:
        sys.exit(EXIT_SOME_FAILED)
