"""Allow ``python -m galcnn``."""

from galcnn.cli.main import cli

if __name__ == "__main__":
    cli()
