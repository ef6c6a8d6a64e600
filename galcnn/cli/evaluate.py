"""``galcnn evaluate``: parse, call :func:`galcnn.stages.evaluate.evaluate`, report."""

from __future__ import annotations

import sys

import click

from galcnn.choices import SPLITS
from galcnn.cli.main import EXIT_SOME_FAILED, report_failures, run, stdout
from galcnn.cli.options import (LABEL_OPTIONS, add_options, batch_size_option, device_option,
                                label_kwargs, no_amp_option, parse_list, workers_option)
from galcnn.cli.report import class_metrics_table, confusion_table


@click.command("evaluate")
@click.argument("model", type=click.Path(exists=True))
@click.argument("data", type=click.Path(exists=True))
@click.option("--split", type=click.Choice(SPLITS), default="all", show_default=True,
              help="Split of a prepared dataset (augmented copies are always left out).")
@click.option("--tta/--no-tta", default=True, show_default=True,
              help="Pool over the model's symmetry group (the validated model); --no-tta "
                   "scores the bare network.")
@click.option("--json", "json_path", type=click.Path(dir_okay=False),
              help="Also write the metrics to this JSON file.")
@device_option
@no_amp_option
@batch_size_option(None, "Cutouts per forward pass [default: 16 on a CPU, 256 on a GPU].")
@workers_option("Reading processes when DATA holds raw cutouts.")
@add_options(LABEL_OPTIONS)
@click.option("--classes", callback=parse_list, metavar="A,B,...",
              help="Score only samples of these classes.")
@click.option("--band-pattern", metavar="PATTERN",
              help="One file per band (default: the model's pattern).")
@click.option("--bands", callback=parse_list, metavar="B1,B2,...",
              help="Band order for --band-pattern (default: the model's).")
def command(model, data, split, tta, json_path, device, no_amp, batch_size, workers, classes,
            band_pattern, bands, **label_params):
    """Metrics of MODEL (checkpoint or run directory) on labelled DATA (prepared or raw).

    \b
    Examples:
      galcnn evaluate runs/sim prepared/sim --split val
      galcnn evaluate runs/gz1/best.pt more_gz1_cutouts/ --json gz1-metrics.json
    """
    from galcnn.data.atomic import write_json
    from galcnn.stages.evaluate import evaluate

    result = run(evaluate, model, data, split=split, device=device, amp=not no_amp, tta=tta,
                 batch_size=batch_size, workers=workers, classes=classes,
                 band_pattern=band_pattern,
                 bands=bands, **label_kwargs(label_params))
    metrics = result.metrics
    report_failures("evaluate", result.failures, "the JSON output")
    out = stdout()
    out.print(class_metrics_table(metrics, f"{data} ({metrics['n']} samples, split "
                                           f"{metrics['split']})"))
    out.print(confusion_table(metrics, "Confusion matrix (rows: true class)"))
    out.print(f"accuracy {metrics['accuracy']:.3f}   macro-F1 {metrics['macro_f1']:.3f}   "
              f"balanced accuracy {metrics['balanced_accuracy']:.3f}   ECE {metrics['ece']:.3f}")
    if metrics["n_unknown_class"]:
        out.print(f"Left out: {metrics['n_unknown_class']} sample(s) of classes the model does "
                  "not know")
    if json_path:
        run(write_json, json_path, metrics)
    if result.failures:
        sys.exit(EXIT_SOME_FAILED)
