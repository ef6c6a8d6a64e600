"""``galcnn train``: parse, call :func:`galcnn.stages.train.train`, report."""

from __future__ import annotations

import logging
import os
import shlex
import sys
from contextlib import ExitStack
from dataclasses import fields

import click

from galcnn.choices import (CLASS_WEIGHTS, MONITORS, SCHEDULES, SYMMETRIES, TASKS,
                            TRAIN_PRESETS)
from galcnn.cli.main import command_line, run, stderr, stdout
from galcnn.cli.options import (LABEL_OPTIONS, RECIPE_OPTIONS, SPLIT_OPTIONS, ArchitectureChoice,
                                add_options, batch_size_option, device_option, label_kwargs,
                                mirror_pairs_option, SectionedCommand,
                                no_amp_option, overwrite_option, prepare_options_from, seed_option,
                                workers_option)
from galcnn.cli.report import class_metrics_table, pixel_metrics_table
from galcnn.cli.train_display import TrainDisplay
from galcnn.interrupt import Interrupted, exit_code_for, signal_name, stop_on_signals

logger = logging.getLogger("galcnn")


#: train --help: the options most runs set first, then the finer ones, then raw data's.
SECTIONS = [
    ("Run", ["data", "run_dir", "task", "arch", "epochs", "ensemble", "preset", "resume",
             "overwrite", "device", "seed"]),
    ("Network and optimisation", ["width", "depth", "dropout", "symmetry", "mirror_pairs",
                                  "batch_size", "lr", "weight_decay", "schedule",
                                  "warmup_epochs", "label_smoothing", "class_weights",
                                  "balanced_sampling", "patience", "monitor",
                                  "refresh_bn", "refresh_bn_augmented", "ema_epochs",
                                  "init_from", "freeze"]),
    ("Hardware", ["no_amp", "workers", "dist_timeout"]),
    ("Raw cutouts in --data (prepared into RUN/prepared; as in galcnn prepare)",
     None),
]


@click.command("train", cls=SectionedCommand, sections=SECTIONS)
@click.option("--data", required=True, type=click.Path(exists=True),
              help="A prepared dataset (galcnn prepare) or a directory of raw cutouts, then "
                   "prepared into RUN/prepared with the data options below.")
@click.option("-o", "--out", "run_dir", required=True, type=click.Path(file_okay=False),
              help="Run directory: checkpoints, metrics, plots, configuration.")
@click.option("--task", type=click.Choice(TASKS), default="classify", show_default=True,
              help="classify: one class per cutout; segment: a U-Net that labels every pixel "
                   "(needs masks: prepare --masks).")
@click.option("--arch", type=ArchitectureChoice(), default="auto", show_default=True,
              help="resnet: residual network; cnn: compact conv/pool/dropout/dense network; "
                   "gcnn: group convolutions, invariant to right-angle rotations and "
                   "reflections by construction; unet: for --task segment. auto: resnet, or "
                   "unet to segment.")
@click.option("--width", type=click.IntRange(4), default=None,
              help="Channels of the first stage, doubling per stage [default: 32; U-Net 16].")
@click.option("--depth", type=click.IntRange(1, 6), default=3, show_default=True,
              help="U-Net: number of down-sampling levels.")
@click.option("--dropout", type=click.FloatRange(0, 1, max_open=True), default=None,
              help="Dropout before the dense layers (a spatial dropout at a U-Net's "
                   "bottleneck) [default: 0.3; U-Net 0].")
@click.option("--symmetry", type=click.Choice(SYMMETRIES), default="auto", show_default=True,
              help="Group for on-the-fly augmentation and prediction pooling. auto: dihedral "
                   "when classes come in mirror pairs (spiral_cw/spiral_acw, swapped under "
                   "reflection), else rotate (any angle in training, pooled over right "
                   "angles; rot90 for --task segment). rot90 and rotate never flip.")
@mirror_pairs_option
@click.option("--epochs", type=click.IntRange(1), default=50, show_default=True,
              help="Most epochs to train.")
@click.option("--ensemble", type=click.IntRange(1, 32), default=1, show_default=True,
              metavar="N",
              help="Train N members (seeds SEED, SEED+1, ...) into one checkpoint: every "
                   "command runs their average, and the spread column says how much they "
                   "disagree. N times the training time.")
@click.option("--preset", type=click.Choice(TRAIN_PRESETS), default=None,
              help="Options for the hardware: gpu = --width 64 --ensemble 5 --epochs 100 "
                   "--patience 30 --batch-size 128 (options given here win); cpu: the "
                   "defaults.")
@click.option("--patience", type=click.IntRange(1), default=15, show_default=True,
              help="Stop after this many epochs without improvement.")
@click.option("--refresh-bn/--running-bn", default=True, show_default=True,
              help="Before each validation, measure batch-norm statistics afresh on the "
                   "training split (as the saved model then holds them); --running-bn keeps "
                   "the running averages of training, with which validation swung widely.")
@click.option("--refresh-bn-augmented", is_flag=True,
              help="Measure those statistics on training inputs augmented as in training "
                   "(rotated, flipped; the same draws every epoch) instead of plain ones.")
@click.option("--ema-epochs", type=click.FloatRange(0), default=0.0,
              show_default=True, help="Validate and keep a moving average of the weights "
                                      "over about this many epochs (0: off).")
@click.option("--monitor", type=click.Choice(MONITORS), default="auto", show_default=True,
              help="Validation figure for the best checkpoint and early stopping; auto: "
                   "macro_f1 (classify) or mean_iou (segment).")
@batch_size_option(64, "Global batch size (split over processes under torchrun).")
@click.option("--lr", type=click.FloatRange(0, min_open=True), default=2e-3, show_default=True,
              help="Peak AdamW learning rate.")
@click.option("--weight-decay", type=click.FloatRange(0), default=0.05, show_default=True,
              help="AdamW weight decay (decoupled L2 regularisation).")
@click.option("--schedule", type=click.Choice(SCHEDULES), default="cosine", show_default=True,
              help="Learning-rate schedule after linear warm-up.")
@click.option("--warmup-epochs", type=click.FloatRange(0), default=2.0, show_default=True,
              help="Epochs of linear learning-rate warm-up from 0 (fractions allowed).")
@click.option("--label-smoothing", type=click.FloatRange(0, 1, max_open=True), default=0.05,
              show_default=True, help="Share of each target spread over the other classes "
                                      "(against over-confident beliefs).")
@click.option("--class-weights", type=click.Choice(CLASS_WEIGHTS), default="auto",
              show_default=True, help="auto: loss weights proportional to 1/sqrt(class "
                                      "frequency), so rare classes are not ignored.")
@click.option("--balanced-sampling", is_flag=True,
              help="Draw training batches with equal probability per class.")
@seed_option("Seed for the split, initialisation, order and augmentation.")
@device_option
@no_amp_option
@workers_option("DataLoader processes [default: 0 on CPU, a share of the CPUs per GPU].",
                minimum=0)
@click.option("--init-from", type=click.Path(exists=True),
              help="Fine-tune from this checkpoint or run directory (new head when the classes "
                   "differ).")
@click.option("--freeze", type=click.IntRange(0), default=0, show_default=True,
              help="With --init-from: freeze this many leading feature blocks.")
@click.option("--dist-timeout", type=click.FloatRange(0, min_open=True), default=30.0,
              show_default=True, metavar="MINUTES",
              help="Under torchrun or srun: how long a gradient exchange waits for a slow "
                   "process before the job stops (rank 0 preparing --data RAW/ or "
                   "validating never counts against it).")
@click.option("--resume", is_flag=True, help="Continue the run in --out from its last.pt.")
@overwrite_option("Start again in a run directory that holds a run.")
@add_options(LABEL_OPTIONS + RECIPE_OPTIONS + SPLIT_OPTIONS)
def command(data, run_dir, task, arch, width, depth, dropout, symmetry, mirror_pairs, epochs,
            ensemble, preset, patience, refresh_bn, refresh_bn_augmented, ema_epochs, monitor,
            batch_size, lr, weight_decay, schedule,
            warmup_epochs, label_smoothing, class_weights, balanced_sampling, seed, device,
            no_amp, workers, init_from, freeze, dist_timeout, resume, overwrite, **data_params):
    """Train a morphology classifier (or a U-Net: --task segment) on prepared or raw cutouts.

    \b
    Examples:
      galcnn train --data prepared/sim --out runs/sim --epochs 5
      galcnn train --data cutouts/ --out run/
      galcnn train --data prepared/mirabest --out runs/mb --ensemble 3
      galcnn train --data prepared/sim-masks --out runs/unet --task segment
      torchrun --nproc_per_node 4 -m galcnn train --data prepared/gz1 --out runs/gz1
    """
    from galcnn.distributed import distributed_from_env
    from galcnn.stages.train import TASK_TYPES, TrainHooks, TrainOptions, resumed_options, train
    from galcnn.stages.train.presets import with_preset

    options = TrainOptions(
        task=task, arch=arch, width=width, depth=depth, dropout=dropout, symmetry=symmetry,
        mirror_pairs=mirror_pairs, epochs=epochs, batch_size=batch_size, lr=lr,
        weight_decay=weight_decay, schedule=schedule, warmup_epochs=warmup_epochs,
        label_smoothing=label_smoothing, class_weights=class_weights,
        balanced_sampling=balanced_sampling, monitor=monitor, patience=patience, seed=seed,
        refresh_bn=refresh_bn, refresh_bn_augmented=refresh_bn_augmented,
        ema_epochs=ema_epochs, device=device, workers=workers,
        amp=not no_amp, init_from=init_from, freeze=freeze, dist_timeout=dist_timeout,
        ensemble=ensemble)
    if preset and not resume:
        options = with_preset(options, preset, set(_given_options(click.get_current_context())))
    if resume:  # the run's own options, but those given on this command line
        given = _given_options(click.get_current_context())
        options = run(resumed_options, run_dir,
                      {name: getattr(options, name) for name in given})
    prepare_options = prepare_options_from(data_params, seed=seed, mirror_pairs=mirror_pairs,
                                           classes=data_params["classes"],
                                           **label_kwargs(data_params))

    score = TASK_TYPES[options.task]
    launch = distributed_from_env()
    interactive = sys.stderr.isatty() and logger.isEnabledFor(logging.INFO) and launch.is_main
    with ExitStack() as stack:
        display = (stack.enter_context(TrainDisplay(options.epochs, score.score_name,
                                                    score.score_column))
                   if interactive else None)
        stop = stack.enter_context(stop_on_signals(display.announce_stop if display
                                                   else _announce_stop))
        try:
            hooks = TrainHooks(stop=stop, progress=display.start_epoch if display else None,
                               on_epoch_end=display.end_epoch if display else None)
            result = run(train, data, run_dir, options, prepare=prepare_options,
                         resume=resume, overwrite=overwrite, hooks=hooks,
                         command=command_line())
        except Interrupted as exc:
            stack.close()
            _report_stop(exc, launch, run_dir)
    if result is not None:
        _report(result)
        if stop.signum is not None and launch.is_main:
            stderr().print(f"galcnn train: {signal_name(stop.signum)} came after the last "
                           "epoch: the run was finished, every output is complete",
                           markup=False)


def _announce_stop(signum: int) -> None:
    from galcnn.distributed import distributed_from_env

    if distributed_from_env().is_main:  # said once in a distributed job
        stderr().print(f"galcnn train: {signal_name(signum)}: stopping after this batch and "
                       "saving last.pt", markup=False)


def _given_options(context: click.Context) -> list[str]:
    """The TrainOptions fields given on the command line (not left at their defaults)."""
    from click.core import ParameterSource
    from galcnn.stages.train import TrainOptions

    renamed = {"no_amp": "amp"}
    names = {f.name for f in fields(TrainOptions)}
    return [renamed.get(name, name) for name in context.params
            if renamed.get(name, name) in names and context.get_parameter_source(name)
            not in (ParameterSource.DEFAULT, ParameterSource.DEFAULT_MAP)]


def _report_stop(exc: Interrupted, launch, run_dir: str) -> None:
    """How the run stopped, what was kept, and the command that continues it (said once,
    by rank 0 of a distributed job); exit 128+N."""
    if launch.is_main:
        err = stderr()
        last = os.path.join(run_dir, "last.pt")
        if exc.saved:
            err.print(f"galcnn train: stopped by {signal_name(exc.signum)}; {exc.saved}.",
                      markup=False)
        elif os.path.isfile(last):  # a second signal: stopped at once, nothing new saved
            err.print(f"galcnn train: stopped by {signal_name(exc.signum)} at once; {last} "
                      "from the last complete epoch is kept.", markup=False)
        else:
            err.print(f"galcnn train: stopped by {signal_name(exc.signum)} before the first "
                      "checkpoint; nothing was kept.", markup=False)
        if exc.saved or os.path.isfile(last):
            err.print(f"Continue with: {resume_command(launch)}", markup=False)
    raise click.exceptions.Exit(exit_code_for(exc.signum))


def resume_command(launch=None) -> str:
    """The command as typed, with --resume (and without --overwrite, which would start over),
    behind the launcher that started it: a distributed run resumed in one process would go
    on with another batch split."""
    words = [w for w in sys.argv[1:] if w != "--overwrite"]
    if "--resume" not in words:
        words.append("--resume")
    command = "galcnn " + " ".join(shlex.quote(w) for w in words)
    if launch is None or not launch.enabled:
        return command
    if launch.launcher == "srun":
        return f"srun --ntasks {launch.world_size} {command}"
    per_node = os.environ.get("LOCAL_WORLD_SIZE", str(launch.world_size))
    nodes = launch.world_size // max(int(per_node), 1)
    return (f"torchrun {'--nnodes ' + str(nodes) + ' ' if nodes > 1 else ''}--nproc_per_node "
            f"{per_node} -m {command}" + (" (with the same rendezvous options on each node)"
                                          if nodes > 1 else ""))


def _report(result) -> None:
    metrics = result.metrics
    out = stdout()
    stop = " (early stop)" if result.stopped_early else ""
    if result.already_complete:
        more = "" if result.stopped_early else " (a larger --epochs trains on)"
        out.print(f"{result.run_dir} is already complete: {result.epochs_run} epoch(s){stop}, "
                  f"best epoch {result.best_epoch}; nothing to resume{more}", markup=False)
    elif result.members:
        out.print(f"Trained an ensemble of {len(result.members)} ({result.epochs_run} epochs in "
                  f"all) in {result.elapsed_s / 60:.1f} min, saved to {result.run_dir}/best.pt",
                  markup=False)
        for k, member in enumerate(metrics.get("ensemble", []), start=1):
            out.print(f"  member {k} (seed {member['seed']}): best epoch "
                      f"{member['best_epoch']} of {member['epochs_run']}, accuracy "
                      f"{member['accuracy']:.3f}", markup=False)
    else:
        out.print(f"Trained {result.epochs_run} epoch(s){stop} in "
                  f"{result.elapsed_s / 60:.1f} min; best epoch {result.best_epoch}, saved to "
                  f"{result.run_dir}/best.pt", markup=False)
    if "mean_iou" in metrics:
        out.print(pixel_metrics_table(metrics, "Validation split, ensemble (pixels)"
                                      if result.members else
                                      "Validation split, best epoch (pixels)"))
        out.print(f"pixel accuracy {metrics['accuracy']:.3f}   mean IoU {metrics['mean_iou']:.3f}")
        return
    title = (f"Validation split, ensemble of {len(result.members)}" if result.members
             else "Validation split, best epoch")
    out.print(class_metrics_table(metrics, title))
    calibration = metrics.get("calibration", {})
    if calibration.get("fitted", True):
        ece = (f"ECE {metrics['ece_before']:.3f} -> {metrics['ece_after']:.3f} after "
               f"temperature {metrics['temperature']:.2f}")
    else:
        ece = f"ECE {metrics['ece_before']:.3f}; temperature {calibration['note']}"
    out.print(f"accuracy {metrics['accuracy']:.3f}   macro-F1 {metrics['macro_f1']:.3f}   {ece}")
    if "test" in metrics:
        test = metrics["test"]
        out.print(f"test split: accuracy {test['accuracy']:.3f}   macro-F1 "
                  f"{test['macro_f1']:.3f}   ECE {test['ece']:.3f}")
