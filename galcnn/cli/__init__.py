"""The command line: a thin Click layer over the stages.

``main``     the ``galcnn`` group, exit codes, the run-and-report helper
``options``  option objects and value parsers shared by the commands
``report``   tables that more than one command prints
and one module per command: ``prepare``, ``train``, ``evaluate``, ``predict``, ``segment``,
``explain``, ``embed``, ``similar``.
Each command parses its options, calls one library function and reports the result.
"""

from galcnn.cli import embed, evaluate, explain, predict, prepare, segment, similar, train
from galcnn.cli.main import cli

for _module in (prepare, train, evaluate, predict, segment, explain, embed, similar):
    cli.add_command(_module.command)

__all__ = ["cli"]
