"""Allow ``python -m galcnn`` (and ``torchrun -m galcnn``)."""

from galcnn.cli import cli

if __name__ == "__main__":
    cli()
