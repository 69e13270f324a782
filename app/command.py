"""What the CLI (:mod:`app.cli`) and each command module share: the exit codes, the parser that
reports usage errors in one line, the flags every command accepts, and running one command on
its own (``python -m app.campaigns.evaluate ...``).

Imports flow one way: :mod:`app.cli` -> command modules -> this module; it imports no command.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable

from app.errors import AppError

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_HARDWARE, EXIT_OUTPUT, EXIT_INTERRUPT = 0, 1, 2, 3, 4, 130


class Parser(argparse.ArgumentParser):
    """argparse that reports usage errors as one line and exit code 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise AppError(f"{self.prog}: {message}")


def add_common(p: argparse.ArgumentParser) -> None:
    """The flags every command accepts, with the same meaning everywhere."""
    p.add_argument("--backend", choices=["sim", "real"], default="sim", help="embedded simulator or the real robot")
    p.add_argument("--object", default=None, help="object name (default: the set's first)")
    p.add_argument("--objects", default="seen", help="comma-separated object set names or YAML paths")
    p.add_argument("--domain", default="real", help="appearance domain name or YAML path (sim backend)")
    p.add_argument("--seed", type=int, default=0, help="seed of placements and sensor noise")
    p.add_argument("--episodes", type=int, default=1, help="episodes to run")
    p.add_argument("--log-dir", default="runs", help="directory under which run directories are made")
    p.add_argument("--config", default=None, help="hardware config YAML (default config/hardware.yaml)")
    p.add_argument("--record", action="store_true", help="save images of each tick in the run directory")
    p.add_argument("--robot-host", default="172.16.0.2", help="Panda controller address (real backend)")
    p.add_argument("--weights", default=None, help="weights directory of the models (default models/weights)")


def add_gap(p: argparse.ArgumentParser) -> None:
    """``--gap``, on the commands that run episodes (the main job, ``evaluate``, ``faults``)."""
    p.add_argument("--gap", default=None, help="physical reality gap name or YAML path (config/gaps; sim backend; "
                                               "default: lab, or none for the sim domain)")


def standalone_parser(prog: str, doc: str | None,
                      add_arguments: Callable[[argparse.ArgumentParser], None]) -> argparse.ArgumentParser:
    """The parser of one subcommand run on its own: the common flags plus its own."""
    p = Parser(prog=prog, description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_common(p)
    add_arguments(p)
    return p


def standalone_main(prog: str, doc: str | None, add_arguments: Callable[[argparse.ArgumentParser], None],
                    run: Callable[[argparse.Namespace], int], argv: list[str] | None = None) -> int:
    """``python -m app.MODULE ...``: one subcommand on its own (common flags + its own), with the
    CLI's exit codes and one-line errors. Campaign modules use it so their workers can import them
    under their package name."""
    try:
        return run(standalone_parser(prog, doc, add_arguments).parse_args(argv))
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return EXIT_INTERRUPT
    except AppError as e:
        print(f"error: {e}", file=sys.stderr)
        return e.exit_code
