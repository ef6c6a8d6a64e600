"""Options shared by the commands, declared once (after rasterio's ``rio/options.py``).

Each ``*_option`` is a decorator; ``LABEL_OPTIONS`` and ``RECIPE_OPTIONS`` are lists applied
with :func:`add_options`. Value parsers turn what a user types into library values and report
a bad value as a usage error (exit status 2), the same in every command.
"""

from __future__ import annotations

import click

from galcnn.cli.main import printable
from galcnn.choices import (ARCHITECTURES, DEVICES, DTYPES, FILL_METHODS, FIT_MODES, STRETCH_CHOICES,
                            STRETCH_SCOPES, parse_device)

__all__ = ["add_options", "inputs_argument", "hdu_option", "device_option", "no_amp_option",
           "batch_size_option", "workers_option", "seed_option", "overwrite_option",
           "LABEL_OPTIONS", "RECIPE_OPTIONS", "SPLIT_OPTIONS", "ArchitectureChoice", "parse_list",
           "recipe_from", "label_kwargs", "STREAM_OPTIONS", "chosen_shard"]


def add_options(options: list):
    """Apply a list of click options to a command (the first listed appears first in --help)."""
    def decorate(function):
        for option in reversed(options):
            function = option(function)
        return function
    return decorate


# ---------------------------------------------------------------------------- value parsers

def parse_size(ctx, param, value: str | None) -> tuple[int, int] | None:
    """``64`` -> (64, 64); ``48x64`` -> (48, 64) as (ny, nx)."""
    if value is None:
        return None
    text = value.lower().replace(" ", "")
    try:
        parts = [int(p) for p in text.split("x")] if "x" in text else [int(text)] * 2
    except ValueError:
        raise click.BadParameter(f"{value!r} is not a size; give N or NYxNX, e.g. 64 or 48x64")
    if len(parts) != 2 or min(parts) < 4:
        raise click.BadParameter(f"{value!r}: sizes must be at least 4 pixels")
    return parts[0], parts[1]


def parse_list(ctx, param, value: str | None) -> list[str] | None:
    """``a,b,c`` -> ["a", "b", "c"]."""
    if value is None:
        return None
    items = [v.strip() for v in value.split(",") if v.strip()]
    if not items:
        raise click.BadParameter("give a comma-separated list")
    return items


def parse_where(ctx, param, values: tuple[str, ...]) -> dict[str, str]:
    """Repeated ``COL=VALUE`` -> {"COL": "VALUE"}."""
    where = {}
    for item in values:
        column, sep, wanted = item.partition("=")
        if not sep or not column.strip():
            raise click.BadParameter(f"{item!r}: write COLUMN=VALUE, e.g. confident=1")
        where[column.strip()] = wanted.strip()
    return where


def parse_weight_map(ctx, param, value: str | None) -> dict[str, float] | None:
    """``0=0.5,1=1`` -> {"0": 0.5, "1": 1.0}."""
    if value is None:
        return None
    mapping = {}
    for item in value.split(","):
        text, sep, weight = item.partition("=")
        try:
            number = float(weight)
        except ValueError:
            number = float("nan")
        if not sep or not 0 <= number < float("inf"):
            raise click.BadParameter(f"{item!r}: write VALUE=WEIGHT with a weight >= 0, "
                                     "e.g. 0=0.5")
        mapping[text.strip()] = number
    return mapping


def parse_pairs(ctx, param, value: str | None) -> list[tuple[str, str]] | None:
    """``A:B,C:D`` -> [("A", "B"), ("C", "D")]; ``none`` -> []; unset -> None (by name)."""
    if value is None:
        return None
    if value.strip().lower() == "none":
        return []
    pairs = []
    for item in value.split(","):
        a, sep, b = item.partition(":")
        if not sep or not a.strip() or not b.strip():
            raise click.BadParameter(f"{item!r}: write A:B, e.g. spiral_cw:spiral_acw")
        pairs.append((a.strip(), b.strip()))
    return pairs


mirror_pairs_option = click.option(
    "--mirror-pairs", callback=parse_pairs, metavar="A:B,...|none",
    help="Classes that are mirror images of each other, so a reflection turns one into the "
         "other (default: found by name, e.g. spiral_cw:spiral_acw).")


def parse_percentiles(ctx, param, value: str | None) -> tuple[float, float] | None:
    if value is None:
        return None
    try:
        low, high = (float(v) for v in value.split(","))
    except ValueError:
        raise click.BadParameter(f"{value!r}: give LOW,HIGH, e.g. 0.5,99.5")
    return low, high


def parse_hdu(ctx, param, value: str | None) -> int | str | None:
    """An HDU number (>= 0), an EXTNAME, or None (automatic)."""
    from galcnn.data.fitsio import parse_hdu as parse

    try:
        return parse(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc))


def check_inputs(ctx, param, values: tuple[str, ...]) -> list[str]:
    """Every INPUTS item must name something: a file or directory, an ``@list`` file, or a
    glob that matches. (Files named inside a list are checked later, one error row each.)"""
    import glob
    import os

    for item in values:
        pattern = any(ch in item for ch in "*?[") and not os.path.exists(item)
        if item.startswith("@"):
            missing = not os.path.isfile(item[1:])
        elif pattern:
            missing = not glob.glob(item, recursive=True)
        else:
            missing = not os.path.exists(item)
        if missing:
            what = "matches no file" if pattern and not item.startswith("@") else \
                "no such file or directory"
            raise click.BadParameter(f"{printable(item)}: {what}", ctx=ctx, param=param)
    return list(values)


#: ``INPUTS...``: files, directories, globs or ``@list`` files, checked to exist.
inputs_argument = click.argument("inputs", nargs=-1, required=True, callback=check_inputs)


def ArchitectureChoice() -> click.Choice:  # noqa: N802  (a click type, as click.Choice)
    """``auto`` and galcnn's own architectures, named without importing the networks (a
    command line process holds no other: those are registered by code that imports galcnn)."""
    return click.Choice(("auto", *ARCHITECTURES))


class SectionedCommand(click.Command):
    """A command whose ``--help`` lists its options in titled sections, in the order given
    (``sections``: title and option names, or None for every option not named elsewhere),
    the common ones first."""

    def __init__(self, *args, sections: list[tuple[str, list[str]]] = (), **kwargs):
        super().__init__(*args, **kwargs)
        self.sections = list(sections)

    def format_options(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        help_name = self.get_help_option(ctx).name if self.get_help_option(ctx) else None
        records = {param.name: param.get_help_record(ctx) for param in self.get_params(ctx)}
        records = {name: record for name, record in records.items() if record}
        named = {name for _, names in self.sections for name in names or ()}
        rest = [name for name in records if name not in named and name != help_name]
        for title, names in self.sections + [("Other options", [help_name])]:
            rows = [records.pop(name) for name in (rest if names is None else names)
                    if name in records]
            if rows:
                with formatter.section(title):
                    formatter.write_dl(rows)


# ---------------------------------------------------------------------------- single options

def hdu_option(help: str = "Image HDU by number or EXTNAME (default: first HDU with 2-D/3-D "
                           "data)."):
    return click.option("--hdu", default=None, metavar="N|EXTNAME", callback=parse_hdu,
                        help=help)


def parse_device_name(ctx, param, value: str) -> str:
    """A device name as :func:`galcnn.choices.parse_device` reads it (a usage error else)."""
    try:
        parse_device(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc))
    return value.strip().lower()


device_option = click.option(
    "--device", default="auto", show_default=True, callback=parse_device_name,
    metavar="|".join(DEVICES),
    help="auto: CUDA when present (the GPU of each process's local rank under torchrun or "
         "srun), else CPU; the variable GALCNN_DEVICE changes what auto means.")
no_amp_option = click.option(
    "--no-amp", is_flag=True, help="float32 end to end on a GPU (no bf16/fp16 autocast, no "
                                   "TF32).")


def batch_size_option(default: int | None, help: str | None = None):
    return click.option("--batch-size", type=click.IntRange(1), default=default,
                        show_default=default is not None, help=help)


def workers_option(help: str, minimum: int = 1):
    return click.option("-j", "--workers", type=click.IntRange(minimum), default=None,
                        help=help)


def seed_option(help: str):
    return click.option("--seed", type=int, default=0, show_default=True, help=help)


def overwrite_option(help: str = "Replace an existing output."):
    return click.option("--overwrite", is_flag=True, help=help)


# ---------------------------------------------------------------------------- option groups

#: Where labels come from: ``prepare``, ``train`` (raw cutouts) and ``evaluate``.
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
]

#: How files become objects and objects become network inputs (the recipe, galcnn.data.recipe):
#: ``prepare`` and ``train`` (raw cutouts).
RECIPE_OPTIONS = [
    click.option("--band-pattern", metavar="PATTERN",
                 help="One file per band: file-name pattern with {id} and {band}, "
                      "e.g. '{id}_{band}.fits'."),
    click.option("--bands", callback=parse_list, metavar="B1,B2,...",
                 help="Band order for --band-pattern (default: sorted band names)."),
    hdu_option(),
    click.option("--size", callback=parse_size, metavar="N|NYxNX",
                 help="Output size in pixels (default: the native size when all inputs "
                      "agree)."),
    click.option("--fit", type=click.Choice(FIT_MODES), default="crop", show_default=True,
                 help="crop: centre crop/pad, pixel scale kept; resize: resample, field kept."),
    click.option("--stretch", type=click.Choice(STRETCH_CHOICES), default="auto",
                 show_default=True,
                 help="Per-image intensity stretch. auto: peak (asinh scaled to the source's "
                      "peak, noise below --floor cleared: a source looks the same at any "
                      "brightness) for classifiers; asinh scaled to the noise with --masks, "
                      "for a U-Net's fields."),
    click.option("--stretch-scope", type=click.Choice(STRETCH_SCOPES), default="image",
                 show_default=True,
                 help="image: statistics shared across bands (keeps colour); band: per band."),
    click.option("--softening", type=float, default=1.0, show_default=True,
                 help="asinh softening in units of the background noise."),
    click.option("--peak-softening", type=click.FloatRange(0, 1, min_open=True), default=0.02,
                 show_default=True,
                 help="peak stretch: asinh softening as a fraction of the source's peak."),
    click.option("--floor", type=click.FloatRange(0), default=3.0, show_default=True,
                 help="peak stretch: pixels below this many noise sigmas become 0."),
    click.option("--percentiles", callback=parse_percentiles, metavar="LOW,HIGH",
                 help="Clip percentiles for percentile and log stretches [default: 0.5,99.5]."),
    click.option("--zscale-contrast", type=float, default=0.25, show_default=True,
                 help="zscale stretch: the IRAF contrast."),
    click.option("--log-a", type=float, default=1000.0, show_default=True,
                 help="log stretch: y = log(a x + 1) / log(a + 1)."),
    click.option("--fill", type=click.Choice(FILL_METHODS), default="median", show_default=True,
                 help="Value for NaN/inf/BLANK pixels (after the stretch)."),
    click.option("--max-bad-fraction", type=click.FloatRange(0, 1, min_open=True), default=0.5,
                 show_default=True, help="Reject an image with more bad pixels than this."),
    click.option("--dtype", type=click.Choice(DTYPES), default="float32", show_default=True,
                 help="Stored pixel type (float16 halves the disk)."),
]

#: How a prepared training set is drawn: split and masks (``prepare``, ``train``).
SPLIT_OPTIONS = [
    click.option("--classes", callback=parse_list, metavar="A,B,...",
                 help="Keep only these classes, in this order (others are dropped and "
                      "counted)."),
    click.option("--val-fraction", type=click.FloatRange(0, 1, max_open=True), default=0.15,
                 show_default=True, help="Stratified validation fraction."),
    click.option("--test-fraction", type=click.FloatRange(0, 1, max_open=True), default=0.0,
                 show_default=True, help="Stratified test fraction."),
    click.option("--masks", default="none", show_default=True, metavar="none|auto|hdu:NAME",
                 help="Pixel masks for training a U-Net (train --task segment): auto derives "
                      "them (sigma-clipped background, threshold, central footprint); hdu:NAME "
                      "reads extension NAME of each cutout (0 background, 1 the object, "
                      "2 others)."),
    click.option("--mask-nsigma", type=click.FloatRange(0, min_open=True), default=2.0,
                 show_default=True, help="--masks auto: detection threshold in noise sigmas."),
    click.option("--weight-column", metavar="COLUMN",
                 help="Label-table column giving each cutout a loss weight: a number is the "
                      "weight, true/yes 1, false/no 0, empty 1 (e.g. MiraBest's confident; "
                      "with --weight-map 0=0.5 its uncertain sources count half)."),
    click.option("--weight-map", callback=parse_weight_map, metavar="VALUE=W,...",
                 help="Weights for the weight column's values, before its numbers."),
]

_LABEL_KEYS = ("labels", "id_column", "label_column", "where")


def recipe_from(params: dict):
    """The :class:`galcnn.data.recipe.Preprocess` of the ``RECIPE_OPTIONS`` values."""
    from galcnn.data.recipe import Preprocess
    from galcnn.data.stretch import Stretch

    low, high = params["percentiles"] or (0.5, 99.5)
    try:
        stretch = Stretch(name=params["stretch"], scope=params["stretch_scope"],
                          softening=params["softening"], lower=low, upper=high,
                          contrast=params["zscale_contrast"], log_a=params["log_a"],
                          peak_softening=params["peak_softening"], floor=params["floor"])
        return Preprocess(bands=tuple(params["bands"] or ()), size=params["size"],
                          fit=params["fit"], stretch=stretch, fill=params["fill"],
                          max_bad_fraction=params["max_bad_fraction"], hdu=params["hdu"],
                          band_pattern=params["band_pattern"], dtype=params["dtype"])
    except ValueError as exc:
        raise click.UsageError(str(exc))


def prepare_options_from(params: dict, *, augment: str = "none", copies: int = 0,
                         seed: int = 0, mirror_pairs=None, **more):
    """:class:`galcnn.stages.prepare.PrepareOptions` of the recipe and split options
    (``more``: other fields, such as the label options)."""
    from galcnn.stages.prepare import PrepareOptions

    try:
        return PrepareOptions(preprocess=recipe_from(params), augment=augment, copies=copies,
                              val_fraction=params["val_fraction"],
                              test_fraction=params["test_fraction"], seed=seed,
                              masks=params["masks"], mask_nsigma=params["mask_nsigma"],
                              weight_column=params.get("weight_column"),
                              weight_map=params.get("weight_map"),
                              mirror_pairs=None if mirror_pairs is None
                              else tuple(mirror_pairs), **more)
    except ValueError as exc:
        raise click.UsageError(str(exc))


FITS_NAMES = (".fits", ".fit", ".fts", ".fits.gz", ".fit.gz")


def table_format(chosen: str | None, out_path: str) -> str:
    """The table format: as chosen, else from the output's name; a choice its name
    contradicts (FITS into ``p.csv``) is a usage error, not a file a reader misreads."""
    named = "fits" if out_path.lower().endswith(FITS_NAMES) else (
        "csv" if out_path.lower().endswith(".csv") else None)
    if chosen is None:
        return named or "csv"
    if named is not None and named != chosen:
        raise click.BadParameter(f"--format {chosen} does not fit the output {out_path}: name "
                                 f"it .{chosen}, or leave --format out",
                                 param_hint="'--format'")
    return chosen


def label_kwargs(params: dict) -> dict:
    """Keyword arguments of the label options, as the stages take them."""
    return {key: params[key] for key in _LABEL_KEYS}


#: Options of the commands that stream cutouts through a model into one table (predict, embed).
STREAM_OPTIONS = [
    click.option("--shard", metavar="K/N",
                 help="Only the K-th of N disjoint parts of the inputs (default: from "
                      "SLURM_ARRAY_TASK_ID/COUNT when set)."),
    click.option("--resume", is_flag=True,
                 help="Continue OUT.partial from an interrupted run."),
    overwrite_option(),
    batch_size_option(None, "Cutouts per forward pass [default: 16 on a CPU, 256 on a GPU]."),
    device_option,
    no_amp_option,
    workers_option("Reading processes [default: usable CPUs, one left for the model on CPU]."),
    hdu_option("Image HDU (default: the model's rule, first HDU with 2-D/3-D data)."),
    click.option("--band-pattern", metavar="PATTERN",
                 help="One file per band (default: the model's pattern)."),
    click.option("--bands", callback=parse_list, metavar="B1,B2,...",
                 help="Band order for --band-pattern (default: the model's)."),
]


def report_array_shard(command: str, shard: str | None, chosen, result) -> None:
    """A Slurm array task that took its shard from the array says how many of the inputs it
    was given are its own: a task handed its own list would otherwise lose rows silently."""
    if shard or not chosen:
        return
    from galcnn.cli.main import stderr

    mine = result.n_rows
    stderr().print(f"galcnn {command}: Slurm array task: shard {chosen[0]}/{chosen[1]} of the "
                   f"inputs, {mine} of the {mine + result.n_other_shards} given; the other "
                   f"{result.n_other_shards} are left to the array's other tasks (--shard 1/1 "
                   "takes every input given)")


def chosen_shard(shard: str | None) -> tuple[int, int] | None:
    """``--shard K/N``, else the Slurm array task's part, else None."""
    from galcnn.data.shards import parse_shard, shard_from_env

    try:
        return parse_shard(shard) if shard else shard_from_env()
    except ValueError as exc:
        raise click.UsageError(str(exc))
