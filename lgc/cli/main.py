"""``lgc`` entry point: dispatches to the subcommand modules listed in ``COMMANDS``.

Exit codes: 0 success, 1 the job ran and failed a check, 2 bad usage or bad input file.
"""
from __future__ import annotations

import argparse
import importlib
import sys

#: subcommand -> module under lgc.cli; a module exposes HELP, add_arguments(parser), run(args) -> int.
COMMANDS = {
    "demo": "demo",
    "train": "train",
    "plot": "plot",
    "compile": "compile",
    "bench": "bench",
    "export": "export",
    "inspect": "inspect",
}

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="lgc", description="Compile differentiable logic gate networks.")
    from lgc import __version__
    parser.add_argument("--version", action="version", version=f"lgc {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, module_name in COMMANDS.items():
        module = importlib.import_module(f".{module_name}", __package__)
        p = sub.add_parser(name, help=module.HELP, description=module.__doc__)
        module.add_arguments(p)
        p.set_defaults(_run=module.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "_run", None):
        parser.print_help()
        return EXIT_USAGE
    from lgc._optional import MissingDependency
    from lgc.ir import CircuitError
    try:
        return int(args._run(args) or 0)
    except (CircuitError, OSError, ValueError, MissingDependency) as e:  # bad input or file (FormatError is a CircuitError)
        message = " ".join(str(e).split())  # one line, whatever the message holds
        print(f"lgc {args.command}: error: {message}", file=sys.stderr)
        return EXIT_USAGE
    except ModuleNotFoundError as e:   # an optional dependency no explicit check named: still one line
        from lgc._optional import extra_for
        extra = extra_for(e.name or "")
        if extra is None:
            raise
        print(f"lgc {args.command}: error: needs {e.name}, which is not installed: pip install 'lgc[{extra}]'",
              file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
