"""The ``lgc`` command line: one module per subcommand, each with ``HELP``, ``add_arguments`` and ``run``."""
from .main import main

__all__ = ["main"]
