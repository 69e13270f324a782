"""Command-line interface: ``python -m app`` (or the ``simgrasp`` console script).

Exit codes: 0 every episode grasped (subcommands: completed), 1 a grasp failed, 2 a usage,
configuration or input error (one line on stderr), 3 hardware unreachable, 130 Ctrl-C.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable

from app.errors import AppError

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_HARDWARE, EXIT_INTERRUPT = 0, 1, 2, 3, 130


class _Parser(argparse.ArgumentParser):
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


def _cmd_bench(args: argparse.Namespace) -> int:
    from app.bench import run_bench

    return run_bench(args)


def _cmd_inspect(args: argparse.Namespace) -> int:
    from app.inspect_run import main_inspect

    return main_inspect(args.run_dir, args.json)


def _cmd_calibrate(args: argparse.Namespace) -> int:
    from app.calibrate import run_calibrate

    return run_calibrate(args)


def _cmd_eval_models(args: argparse.Namespace) -> int:
    from app.eval_models import run_eval_models

    return run_eval_models(args)


def _cmd_evaluate(args: argparse.Namespace) -> int:
    from app.evaluate import run_evaluate

    return run_evaluate(args)


def _cmd_faults(args: argparse.Namespace) -> int:
    from app.faults import run_faults

    return run_faults(args)


def _cmd_dataset(args: argparse.Namespace) -> int:
    from app.dataset_builder import run_dataset

    return run_dataset(args)


def _cmd_train(args: argparse.Namespace) -> int:
    from app.errors import ConfigError

    if args.what == "gan":
        from models.train_gan import train_gan

        if not args.data:
            raise ConfigError("train gan: --data DIR is required (build it with `python -m app dataset`)")
        train_gan(args.recipe or "cyclegan", args.data, args.out or "runs/train_gan", resume=args.resume,
                  epochs_override=args.epochs, limit=args.limit)
        return 0
    from models.train_ppo import train_ppo

    train_ppo(args.recipe or "config/models/ppo.yaml", args.out or "runs/train_ppo", seed=args.seed,
              resume=args.resume, total_override=args.steps)
    return 0


def standalone_parser(prog: str, doc: str | None,
                      add_arguments: Callable[[argparse.ArgumentParser], None]) -> argparse.ArgumentParser:
    """The parser of one subcommand run on its own: the common flags plus its own."""
    p = _Parser(prog=prog, description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
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


def _cmd_run(args: argparse.Namespace) -> int:
    from app.run import run_episodes

    return run_episodes(args)


COMMANDS: dict[str, tuple[str, Callable[[argparse.Namespace], int]]] = {
    "bench": ("time rendering, environment steps and the VS pipeline", _cmd_bench),
    "dataset": ("build the CycleGAN dataset (sim or real backend)", _cmd_dataset),
    "train": ("train the CycleGAN (gan) or the PPO pose agent (ppo)", _cmd_train),
    "calibrate": ("compute the VS targets of the hardware file and check them in the simulator", _cmd_calibrate),
    "evaluate": ("run an evaluation campaign (trees x objects x trials) and summarize it", _cmd_evaluate),
    "faults": ("run a fault-injection campaign (kinds x trials) and summarize it", _cmd_faults),
    "eval-models": ("measure the models on paired sim/real images (pose, segmentation, adaptation, latency)",
                    _cmd_eval_models),
    "inspect": ("explain a run directory: outcome, failing node, time per node, VS plot", _cmd_inspect),
}


def build_parser() -> argparse.ArgumentParser:
    """The top-level parser: the main job (flags only) and the subcommands."""
    parser = _Parser(prog="python -m app", description=__doc__,
                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tree", default="drl_gan_vs", help="behaviour tree to run (config/trees)")
    parser.add_argument("--show-tree", nargs="?", const="-", default=None, metavar="FILE",
                        help="print the tree (and write FILE.dot/.svg/.png if given) and exit")
    add_common(parser)
    sub = parser.add_subparsers(dest="command", parser_class=_Parser,
                                metavar="{" + ",".join([*COMMANDS, "grasps", "compliant"]) + "}")
    for name, (help_text, _) in COMMANDS.items():
        sp = sub.add_parser(name, help=help_text)
        add_common(sp)
        if name == "bench":
            sp.add_argument("what", choices=["sim", "pipeline"], help="what to time")
            sp.add_argument("--json", action="store_true", help="print one JSON object")
            sp.add_argument("--n", type=int, default=50, help="samples per measurement")
        if name == "dataset":
            sp.add_argument("--out", required=True, help="dataset directory (validation set in OUT/val)")
            sp.add_argument("--n", type=int, default=655, help="images per domain (the paper: 655)")
        if name == "train":
            sp.add_argument("what", choices=["gan", "ppo"], help="which model")
            sp.add_argument("--recipe", default=None, help="recipe YAML (default config/models/cyclegan.yaml or ppo.yaml)")
            sp.add_argument("--data", default=None, help="dataset directory (gan)")
            sp.add_argument("--out", default=None, help="run directory (checkpoints, logs, curves)")
            sp.add_argument("--resume", action="store_true", help="continue from the run directory's checkpoint")
            sp.add_argument("--epochs", type=int, default=None, help="total epochs instead of the recipe's (gan)")
            sp.add_argument("--limit", type=int, default=None, help="use only the first N images per domain (gan)")
            sp.add_argument("--steps", type=int, default=None, help="total environment steps instead of the recipe's (ppo)")
        if name == "evaluate":
            from app.evaluate import add_arguments

            add_arguments(sp)
        if name == "faults":
            from app.faults import add_arguments as add_fault_arguments

            add_fault_arguments(sp)
        if name == "eval-models":
            sp.add_argument("--out", required=True, help="output directory (model_metrics.json, figures)")
            sp.add_argument("--images", type=int, default=100, help="held-out views per set for segmentation")
            sp.add_argument("--latency-frames", type=int, default=200, help="frames timed per thread count")
            sp.add_argument("--weights", default=None, help="weights directory (default models/weights)")
            sp.set_defaults(episodes=50)
        if name == "calibrate":
            sp.add_argument("--json", action="store_true", help="print JSON")
        if name == "inspect":
            sp.add_argument("run_dir", help="a run directory (under --log-dir)")
            sp.add_argument("--json", action="store_true", help="print one JSON object")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the CLI and return its exit code."""
    os.environ.setdefault("OMP_NUM_THREADS", "2")
    argv = sys.argv[1:] if argv is None else argv
    try:
        if argv[:1] == ["grasps"]:  # the grasp tool has its own flags (see `python -m app grasps --help`)
            from app.sim.grasp_tool import main as grasp_main

            return grasp_main(argv[1:])
        if argv[:1] == ["compliant"]:  # generate the compliant objects' URDFs (app/sim/compliant.py)
            from app.sim.compliant import main as compliant_main

            return compliant_main(argv[1:])
        args = build_parser().parse_args(argv)
        if args.command is None:
            return _cmd_run(args)
        return COMMANDS[args.command][1](args)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return EXIT_INTERRUPT
    except AppError as e:
        print(f"error: {e}", file=sys.stderr)
        return e.exit_code
