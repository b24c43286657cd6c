"""The ``distbench`` command: ``main`` builds the Typer app, the other modules add its commands.

The console script is ``distbench.cli:app``.
"""

from distbench.cli.main import app

__all__ = ["app"]
