"""``galcnn prepare``: parse, call :func:`galcnn.stages.prepare.prepare`, report."""

from __future__ import annotations

import os
import sys

import click

from galcnn.choices import GROUPS
from galcnn.cli.main import (EXIT_SOME_FAILED, command_line, printable, report_failures,
                             run_with_progress, stdout)
from galcnn.cli.options import (LABEL_OPTIONS, RECIPE_OPTIONS, SPLIT_OPTIONS, add_options,
                                inputs_argument, label_kwargs, mirror_pairs_option,
                                overwrite_option,
                                prepare_options_from, seed_option, workers_option)


@click.command("prepare")
@inputs_argument
@click.option("-o", "--out", "out_dir", required=True, type=click.Path(file_okay=False),
              help="Output directory for the prepared dataset (created).")
@add_options(LABEL_OPTIONS + RECIPE_OPTIONS + SPLIT_OPTIONS)
@click.option("--no-labels", is_flag=True, help="Ignore any labels (a set for prediction).")
@seed_option("Seed for the split and augmentation.")
@click.option("--augment", type=click.Choice(GROUPS), default="none", show_default=True,
              help="Symmetry group for augmented copies: rot90 keeps winding sense, dihedral "
                   "adds reflections (a reflected copy of a mirror-pair class, spiral_cw, is "
                   "labelled as its partner, spiral_acw), rotate uses any angle.")
@mirror_pairs_option
@click.option("--copies", type=click.IntRange(0), default=0, show_default=True,
              help="Transformed copies per training cutout (validation/test never augmented).")
@workers_option("Parallel reading processes [default: usable CPUs].")
@overwrite_option("Replace an existing output directory.")
def command(inputs, out_dir, no_labels, seed, augment, mirror_pairs, copies, workers, overwrite,
            **params):
    """Prepare FITS cutouts in INPUTS (files, directories, globs, @list files) for training.

    \b
    Examples:
      galcnn prepare sample_data/simulated -o prepared/sim --augment rot90 --copies 3
      galcnn prepare gz1/ -o prepared/gz1 --size 64
      galcnn prepare mirabest/ -o prepared/mb --where confident=1 --classes FRI,FRII
    """
    from galcnn.stages.prepare import prepare

    options = prepare_options_from(params, augment=augment, copies=copies, seed=seed,
                                   mirror_pairs=mirror_pairs, no_labels=no_labels,
                                   classes=params["classes"], workers=workers,
                                   overwrite=overwrite, **label_kwargs(params))
    result = run_with_progress("prepare", "cutouts", prepare, list(inputs), out_dir, options,
                               command=command_line())
    report_failures("prepare", result.failures, "failed.csv", limit=len(result.failures))
    report_prepared(result)
    if result.failures:
        sys.exit(EXIT_SOME_FAILED)


def report_prepared(result) -> None:
    from rich.table import Table
    from rich.text import Text

    out = stdout()
    height, width = result.size
    out.print(f"Prepared {result.n_samples} samples from {result.n_sources} inputs "
              f"into {result.out_dir} ({result.n_bands} band(s), {width}x{height} px, "
              f"{result.elapsed_s:.1f} s)")
    if result.classes:
        pieces = [piece[len("table:"):] if piece.startswith("table:") else piece
                  for piece in result.label_source.split("; ")]
        if len(pieces) == 1 and result.label_source.startswith("table:"):
            pieces = [os.path.basename(pieces[0])]
        out.print(f"Labels from {', '.join(pieces)}; samples per class and split:",
                  markup=False)
        table = Table()
        table.add_column("class")
        splits = [s for s in ("train", "val", "test") if s in result.class_counts]
        for split in splits:
            table.add_column(split, justify="right")
        for name in result.classes:
            table.add_row(Text(printable(name)),
                          *(str(result.class_counts[s].get(name, 0)) for s in splits))
        out.print(table)
    else:
        out.print("No labels: every sample is in split 'unlabelled'.")
    out_dir = result.out_dir
    if result.dropped_classes:
        dropped = ", ".join(f"{name} {n}" for name, n in sorted(result.dropped_classes.items()))
        out.print(f"Dropped by --classes: {sum(result.dropped_classes.values())} ({dropped})")
    if result.n_unlabelled:
        out.print(f"Files with no label: {result.n_unlabelled} (listed in "
                  f"{os.path.join(out_dir, 'unlabelled.txt')})")
    if result.n_missing:
        out.print(f"Labels with no file: {result.n_missing} (listed in "
                  f"{os.path.join(out_dir, 'missing_files.txt')})")
    if result.masks != "none":
        out.print(f"Masks ({result.masks}) stored with every sample under "
                  f"{os.path.join(out_dir, 'masks')}")
    if result.n_bad_pixels:
        out.print(f"Bad pixels (NaN/inf/BLANK) filled: {result.n_bad_pixels}")
    if result.failures:
        out.print(f"Failed: {result.n_failed} input(s), listed in "
                  f"{os.path.join(out_dir, 'failed.csv')}")
