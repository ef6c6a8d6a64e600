"""The ``galcnn`` command group: version, verbosity and the subcommands.

Exit status, the same for every command: 0 everything worked; 1 nothing was done (a fatal
problem, explained in one line); 2 a usage error; 3 the command ran but some inputs failed
(each named in the output and on stderr).
"""

from __future__ import annotations

import logging
import sys

import click

from galcnn import __version__

EXIT_OK = 0
EXIT_FATAL = 1
EXIT_USAGE = 2
EXIT_SOME_FAILED = 3


def _configure_logging(verbosity: int) -> None:
    level = logging.WARNING if verbosity < 0 else logging.INFO if verbosity == 0 else logging.DEBUG
    logger = logging.getLogger("galcnn")
    logger.setLevel(level)
    logger.handlers.clear()
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s galcnn %(levelname)s: %(message)s",
                                           datefmt="%Y-%m-%dT%H:%M:%S"))
    logger.addHandler(handler)
    logger.propagate = False


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, "--version", prog_name="galcnn")
@click.option("-v", "--verbose", count=True, help="More log detail (repeatable).")
@click.option("-q", "--quiet", is_flag=True, help="Only warnings and errors on stderr.")
def cli(verbose: int, quiet: bool) -> None:
    """Train CNN morphology classifiers on astronomical FITS cutouts.

    Exit status: 0 all inputs succeeded, 1 fatal error (nothing written), 2 usage error,
    3 finished but some inputs failed (listed in the output).
    """
    _configure_logging(-1 if quiet else verbose)


def _register() -> None:
    from galcnn.cli.prepare import prepare_command
    from galcnn.cli.predict import predict_command
    from galcnn.cli.segment import segment_command
    from galcnn.cli.train import evaluate_command, train_command

    cli.add_command(prepare_command)
    cli.add_command(train_command)
    cli.add_command(evaluate_command)
    cli.add_command(predict_command)
    cli.add_command(segment_command)


_register()
