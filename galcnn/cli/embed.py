"""``galcnn embed``: parse, call :func:`galcnn.stages.embed.embed`, report."""

from __future__ import annotations

import sys

import click

from galcnn.cli.main import EXIT_SOME_FAILED, report_failures, run_with_progress, stdout
from galcnn.cli.options import (STREAM_OPTIONS, add_options, chosen_shard, inputs_argument,
                                report_array_shard)


@click.command("embed")
@click.argument("model", type=click.Path(exists=True))
@inputs_argument
@click.option("-o", "--out", "out_path", required=True, type=click.Path(dir_okay=False),
              help="Output FITS table (written as OUT.partial, converted when complete).")
@click.option("--anomaly", is_flag=True,
              help="Add anomaly scores: the mean cosine distance to the 10 nearest training "
                   "embeddings, and its percentile among the training cutouts' own.")
@add_options(STREAM_OPTIONS)
def command(model, inputs, out_path, anomaly, shard, resume, overwrite, batch_size, device, no_amp,
            workers, hdu, band_pattern, bands):
    """A feature vector from MODEL for every object in INPUTS, for similarity search.

    \b
    A FITS binary table: id, file, hdu, ra, dec, embedding (the classifier's last
    features, averaged over its symmetry group: a turned cutout has the same vector),
    with --anomaly: anomaly, anomaly_percentile; status. In Python,
    astropy.table.Table.read(OUT)["embedding"] is an (n, features) array.
    Exit status 0: every input embedded; 3: some failed (their rows say why); 2: usage
    error; 1: nothing could be done.

    \b
    Examples:
      galcnn embed runs/gz1 cutouts/ -o embeddings.fits
      galcnn embed runs/gz1 @survey_files.txt -o part.fits --shard 3/100 --resume
    """
    from galcnn.stages.embed import EmbedOptions, embed

    chosen = chosen_shard(shard)
    options = EmbedOptions(batch_size=batch_size, device=device, workers=workers,
                           amp=not no_amp, shard=chosen, resume=resume, overwrite=overwrite,
                           hdu=hdu, band_pattern=band_pattern, bands=bands, anomaly=anomaly)
    result = run_with_progress("embed", "cutouts", embed, model, list(inputs), out_path, options)
    report_array_shard("embed", shard, chosen, result)
    report_failures("embed", result.failures, "status column")
    part = f" (shard {chosen[0]}/{chosen[1]})" if chosen else ""
    resumed = (f", {result.n_skipped_resume} kept from the interrupted run"
               if result.n_skipped_resume else "")
    stdout().print(f"Wrote {result.n_rows} rows{part} to {result.out_path}: "
                   f"{result.n_ok} embedded, {result.n_failed} failed{resumed} "
                   f"({result.elapsed_s:.1f} s)")
    if result.n_failed:
        sys.exit(EXIT_SOME_FAILED)
