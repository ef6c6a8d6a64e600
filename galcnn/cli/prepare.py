"""``galcnn prepare``: option parsing and reporting around :func:`galcnn.prepare.prepare`."""

from __future__ import annotations

import os
import shlex
import sys
from contextlib import ExitStack

import click

from galcnn.choices import DTYPES, FILL_METHODS, FIT_MODES, GROUPS, STRETCH_NAMES, STRETCH_SCOPES
from galcnn.cli.main import EXIT_SOME_FAILED
from galcnn.cli.options import parse_list, parse_percentiles, parse_size, parse_where


def add_options(options: list):
    """Apply a list of click options to a command (the first listed appears first in --help)."""
    def decorate(function):
        for option in reversed(options):
            function = option(function)
        return function
    return decorate


#: Options that say where labels come from and how files are grouped into objects: shared by
#: ``prepare``, ``train`` and ``evaluate`` (when given raw cutouts).
LABEL_OPTIONS = [
    click.option("--labels", type=click.Path(dir_okay=False),
                 help="Label table (CSV, FITS, ECSV). Default: labels.csv inside the input "
                      "directory, else class-named subdirectories, else no labels."),
    click.option("--id-column", help="Table column matching files (default: file, filename, "
                                     "path, id, objid, name or object)."),
    click.option("--label-column", help="Table column with the class (default: label, class, "
                                        "morphology or type)."),
    click.option("--where", "where", multiple=True, callback=parse_where, metavar="COL=VALUE",
                 help="Keep only table rows where COL equals VALUE (repeatable), e.g. "
                      "confident=1."),
    click.option("--classes", callback=parse_list, metavar="A,B,...",
                 help="Keep only these classes, in this order (others are dropped and "
                      "counted)."),
    click.option("--band-pattern", metavar="PATTERN",
                 help="One file per band: file-name pattern with {id} and {band}, "
                      "e.g. '{id}_{band}.fits'."),
    click.option("--bands", callback=parse_list, metavar="B1,B2,...",
                 help="Band order for --band-pattern (default: sorted band names)."),
]

#: Options that say how cutouts are read, stretched and split: shared by ``prepare`` and by
#: ``train`` when it is given raw cutouts.
DATA_OPTIONS = LABEL_OPTIONS + [
    click.option("--hdu", default=None, metavar="N|EXTNAME",
                 help="Image HDU by number or EXTNAME (default: first HDU with 2-D/3-D data)."),
    click.option("--size", callback=parse_size, metavar="N|NYxNX",
                 help="Output size in pixels (default: the native size when all inputs "
                      "agree)."),
    click.option("--fit", type=click.Choice(FIT_MODES), default="crop", show_default=True,
                 help="crop: centre crop/pad, pixel scale kept; resize: resample, field kept."),
    click.option("--stretch", type=click.Choice(STRETCH_NAMES), default="asinh",
                 show_default=True, help="Per-image intensity stretch."),
    click.option("--stretch-scope", type=click.Choice(STRETCH_SCOPES), default="image",
                 show_default=True,
                 help="image: statistics shared across bands (keeps colour); band: per band."),
    click.option("--softening", type=float, default=1.0, show_default=True,
                 help="asinh softening in units of the background noise."),
    click.option("--percentiles", callback=parse_percentiles, metavar="LOW,HIGH",
                 help="Clip percentiles for percentile and log stretches [default: 0.5,99.5]."),
    click.option("--zscale-contrast", type=float, default=0.25, show_default=True),
    click.option("--log-a", type=float, default=1000.0, show_default=True,
                 help="log stretch: y = log(a x + 1) / log(a + 1)."),
    click.option("--fill", type=click.Choice(FILL_METHODS), default="median", show_default=True,
                 help="Value for NaN/inf/BLANK pixels (after the stretch)."),
    click.option("--max-bad-fraction", type=click.FloatRange(0, 1, min_open=True), default=0.5,
                 show_default=True, help="Reject an image with more bad pixels than this."),
    click.option("--val-fraction", type=click.FloatRange(0, 1, max_open=True), default=0.15,
                 show_default=True, help="Stratified validation fraction."),
    click.option("--test-fraction", type=click.FloatRange(0, 1, max_open=True), default=0.0,
                 show_default=True, help="Stratified test fraction."),
    click.option("--dtype", type=click.Choice(DTYPES), default="float32", show_default=True,
                 help="Stored pixel type (float16 halves the disk)."),
    click.option("--masks", default="none", show_default=True, metavar="none|auto|hdu:NAME",
                 help="Pixel masks for training a U-Net (train --task segment): auto derives "
                      "them (sigma-clipped background, threshold, central footprint); hdu:NAME "
                      "reads extension NAME of each cutout (0 background, 1 the object, "
                      "2 others)."),
    click.option("--mask-nsigma", type=click.FloatRange(0, min_open=True), default=2.0,
                 show_default=True, help="--masks auto: detection threshold in noise sigmas."),
]

_LABEL_KEYS = ("labels", "id_column", "label_column", "where", "classes", "band_pattern", "bands")


def prepare_arguments(params: dict, augment: str = "none", copies: int = 0, seed: int = 0):
    """(PrepareOptions, keyword arguments of :func:`galcnn.prepare.prepare`) from CLI values."""
    from galcnn.fitsio import parse_hdu
    from galcnn.normalise import Stretch
    from galcnn.prepare import PrepareOptions

    low, high = params["percentiles"] or (0.5, 99.5)
    try:
        options = PrepareOptions(
            size=params["size"], fit=params["fit"], hdu=parse_hdu(params["hdu"]),
            fill=params["fill"], augment=augment, copies=copies,
            stretch=Stretch(name=params["stretch"], scope=params["stretch_scope"],
                            softening=params["softening"], lower=low, upper=high,
                            contrast=params["zscale_contrast"], log_a=params["log_a"]),
            val_fraction=params["val_fraction"], test_fraction=params["test_fraction"],
            seed=seed, max_bad_fraction=params["max_bad_fraction"], dtype=params["dtype"],
            masks=params["masks"], mask_nsigma=params["mask_nsigma"])
    except ValueError as exc:
        raise click.UsageError(str(exc))
    return options, {key: params[key] for key in _LABEL_KEYS}


@click.command("prepare")
@click.argument("inputs", nargs=-1, required=True)
@click.option("-o", "--out", "out_dir", required=True, type=click.Path(file_okay=False),
              help="Output directory for the prepared dataset (created).")
@add_options(DATA_OPTIONS)
@click.option("--no-labels", is_flag=True, help="Ignore any labels (a set for prediction).")
@click.option("--augment", type=click.Choice(GROUPS), default="none", show_default=True,
              help="Symmetry group for augmented copies: rot90 keeps winding sense, dihedral "
                   "adds flips (swaps spiral_cw/acw), rotate uses any angle.")
@click.option("--copies", type=click.IntRange(0), default=0, show_default=True,
              help="Transformed copies per training cutout (validation/test never augmented).")
@click.option("--seed", type=int, default=0, show_default=True,
              help="Seed for the split and augmentation.")
@click.option("-j", "--workers", type=click.IntRange(1), default=None,
              help="Parallel reading processes [default: usable CPUs].")
@click.option("--overwrite", is_flag=True, help="Replace an existing output directory.")
def prepare_command(inputs, out_dir, no_labels, augment, copies, seed, workers, overwrite,
                    **params):
    """Prepare FITS cutouts in INPUTS (files, directories, globs, @list files) for training.

    \b
    Examples:
      galcnn prepare sample_data/simulated -o prepared/sim --augment rot90 --copies 3
      galcnn prepare gz1/ -o prepared/gz1 --size 64
      galcnn prepare mirabest/ -o prepared/mb --where confident=1 --classes FRI,FRII
    """
    from galcnn.prepare import PrepareError, prepare
    from galcnn.progress import progress_reporter

    options, label_kwargs = prepare_arguments(params, augment, copies, seed)
    command = "galcnn " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    with ExitStack() as stack:
        def reporter(total: int):
            return stack.enter_context(progress_reporter(total, "prepare", unit="cutouts"))

        try:
            result = prepare(list(inputs), out_dir, no_labels=no_labels, options=options,
                             workers=workers, overwrite=overwrite, progress=reporter,
                             command=command, **label_kwargs)
        except PrepareError as exc:
            raise click.ClickException(str(exc))
    report_prepared(result)
    if result.failures:
        sys.exit(EXIT_SOME_FAILED)


def report_prepared(result) -> None:
    from rich.console import Console
    from rich.table import Table

    err = Console(stderr=True, highlight=False, soft_wrap=True)
    for path, problem in result.failures:
        err.print(f"galcnn prepare: {path}: {problem}", markup=False)
    out = Console(highlight=False, soft_wrap=True)
    height, width = result.size
    out.print(f"Prepared [bold]{result.n_samples}[/] samples from {result.n_sources} inputs "
              f"into [bold]{result.out_dir}[/] ({result.n_bands} band(s), {width}x{height} px, "
              f"{result.elapsed_s:.1f} s)")
    if result.classes:
        source = result.label_source
        if source.startswith("table:"):
            source = os.path.basename(source[len("table:"):])
        out.print(f"Labels from {source}; samples per class and split:")
        table = Table()
        table.add_column("class")
        splits = [s for s in ("train", "val", "test") if s in result.class_counts]
        for split in splits:
            table.add_column(split, justify="right")
        for name in result.classes:
            table.add_row(name, *(str(result.class_counts[s].get(name, 0)) for s in splits))
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
        out.print(f"[bold red]Failed: {result.n_failed}[/] input(s), listed in "
                  f"{os.path.join(out_dir, 'failed.csv')}")
