"""``galcnn predict``: parse, call :func:`galcnn.stages.predict.predict`, report."""

from __future__ import annotations

import sys

import click

from galcnn.choices import TABLE_FORMATS
from galcnn.cli.main import EXIT_SOME_FAILED, report_failures, run_with_progress, stderr, stdout
from galcnn.cli.options import (STREAM_OPTIONS, add_options, chosen_shard, inputs_argument,
                                report_array_shard, table_format)


@click.command("predict")
@click.argument("model", type=click.Path(exists=True))
@inputs_argument
@click.option("-o", "--out", "out_path", required=True, type=click.Path(dir_okay=False),
              help="Output table (written as OUT.partial, renamed when complete).")
@click.option("--format", "fmt", type=click.Choice(TABLE_FORMATS), default=None,
              help="csv, or a FITS binary table with provenance keywords [default: from OUT's "
                   "name: fits for .fits, else csv].")
@click.option("--spread", is_flag=True,
              help="Add the spread of the beliefs across the model's symmetry copies (the "
                   "beliefs are always pooled over them).")
@click.option("--tta", is_flag=True, hidden=True,
              help="The old name of --spread (evaluate's and segment's --tta pool or not).")
@click.option("--mc-dropout", type=click.IntRange(0), default=0, show_default=True,
              help="Monte-Carlo dropout samples (averaged; adds their spread).")
@add_options(STREAM_OPTIONS)
def command(model, inputs, out_path, fmt, spread, tta, mc_dropout, shard, resume, overwrite,
            batch_size, device, no_amp, workers, hdu, band_pattern, bands):
    """Class beliefs of MODEL for every object in INPUTS (files, directories, globs, @lists).

    \b
    Columns: id, file, hdu, ra, dec, predicted, p_<class>..., confidence, entropy, spread,
    status ('ok' or 'error: ...'). Exit status 0: every input has a prediction; 3: some
    inputs failed (their rows say why); 2: usage error; 1: nothing could be done.

    \b
    Examples:
      galcnn predict runs/sim sample_data/simulated -o predictions.csv
      galcnn predict runs/gz1 @survey_files.txt -o part.csv --shard 3/100 --resume
    """
    from galcnn.stages.predict import PredictOptions, predict

    chosen = chosen_shard(shard)
    if tta:
        stderr().print("galcnn predict: --tta is now --spread (it adds the spread across the "
                       "symmetry copies; the beliefs are always pooled over them)",
                       markup=False)
    options = PredictOptions(batch_size=batch_size, spread=spread or tta,
                             mc_dropout=mc_dropout, device=device, workers=workers,
                             amp=not no_amp, format=table_format(fmt, out_path),
                             shard=chosen, resume=resume, overwrite=overwrite, hdu=hdu,
                             band_pattern=band_pattern, bands=bands)
    result = run_with_progress("predict", "cutouts", predict,
                               model, list(inputs), out_path, options)
    report_array_shard("predict", shard, chosen, result)
    report_failures("predict", result.failures, "status column")
    report_failures("predict", [(path, f"warning: {warning}") for path, warning
                                in result.warnings], "status column", limit=20)
    flagged = f", {len(result.warnings)} flagged (status 'warning: ...')" \
        if result.warnings else ""
    part = f" (shard {chosen[0]}/{chosen[1]})" if chosen else ""
    resumed = (f", {result.n_skipped_resume} kept from the interrupted run"
               if result.n_skipped_resume else "")
    rate = result.n_ok / max(result.elapsed_s, 1e-9)
    stdout().print(f"Wrote {result.n_rows} rows{part} to {result.out_path}: "
                   f"{result.n_ok} predicted{flagged}, {result.n_failed} failed{resumed} "
                   f"({result.elapsed_s:.1f} s, {rate:.0f} cutouts/s)", markup=False)
    if result.n_failed:
        sys.exit(EXIT_SOME_FAILED)
