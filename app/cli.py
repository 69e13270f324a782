"""Command-line interface: ``python -m app`` (or the ``simgrasp`` console script).

Exit codes: 0 every episode grasped (subcommands: completed), 1 a grasp failed, 2 a usage,
configuration, input or output-path error (one line on stderr, nothing started), 3 hardware
unreachable, 4 an output could not be written during the run (disk full, folder removed,
permissions; what was written is kept, campaigns continue with --resume), 130 Ctrl-C.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable

from app.command import EXIT_INTERRUPT, Parser, add_common, add_gap
from app.errors import AppError


def _cmd_bench(args: argparse.Namespace) -> int:
    from app.tools.bench import run_bench

    return run_bench(args)


def _cmd_inspect(args: argparse.Namespace) -> int:
    from app.tools.inspect_run import main_inspect

    return main_inspect(args.run_dir, args.json)


def _cmd_view(args: argparse.Namespace) -> int:
    from app.tools.view import main_view

    return main_view(args.run_dir, args.out, args.spawn, args.gif)


def _cmd_calibrate(args: argparse.Namespace) -> int:
    from app.tools.calibrate import run_calibrate

    return run_calibrate(args)


def _cmd_eval_models(args: argparse.Namespace) -> int:
    from app.tools.eval_models import run_eval_models

    return run_eval_models(args)


def _cmd_evaluate(args: argparse.Namespace) -> int:
    from app.campaigns.evaluate import run_evaluate

    return run_evaluate(args)


def _cmd_faults(args: argparse.Namespace) -> int:
    from app.campaigns.faults import run_faults

    return run_faults(args)


def _cmd_dataset(args: argparse.Namespace) -> int:
    from app.tools.dataset import run_dataset

    return run_dataset(args)


def _cmd_train(args: argparse.Namespace) -> int:
    from app.errors import ConfigError

    if args.what == "gan":
        from models import SHIPPED_GAN_RECIPE
        from models.train_gan import train_gan

        if not args.data:
            raise ConfigError("train gan: --data DIR is required (build it with `python -m app dataset`)")
        train_gan(args.recipe or SHIPPED_GAN_RECIPE, args.data, args.out or "runs/train_gan", resume=args.resume,
                  epochs_override=args.epochs, limit=args.limit)
        return 0
    from models.train_ppo import train_ppo

    train_ppo(args.recipe or "config/models/ppo.yaml", args.out or "runs/train_ppo", seed=args.seed,
              resume=args.resume, total_override=args.steps)
    return 0


def _cmd_lab(args: argparse.Namespace) -> int:
    from app.tools.lab import run_lab

    return run_lab(args)


def _cmd_run(args: argparse.Namespace) -> int:
    from app.run import run_episodes

    return run_episodes(args)


COMMANDS: dict[str, tuple[str, Callable[[argparse.Namespace], int]]] = {
    "bench": ("time rendering, environment steps and the VS pipeline", _cmd_bench),
    "dataset": ("build the CycleGAN dataset (sim or real backend)", _cmd_dataset),
    "train": ("train the CycleGAN (gan) or the PPO pose agent (ppo)", _cmd_train),
    "calibrate": ("check the VS targets of the hardware file in the simulator, or solve the camera mount (hand-eye)", _cmd_calibrate),
    "evaluate": ("run an evaluation campaign (trees x objects x trials) and summarize it", _cmd_evaluate),
    "faults": ("run a fault-injection campaign (kinds x trials) and summarize it", _cmd_faults),
    "eval-models": ("measure the models on paired sim/real images (pose, segmentation, adaptation, latency)",
                    _cmd_eval_models),
    "lab": ("a new lab in one command: collect images, train the CycleGAN, eval-models, short evaluations",
            _cmd_lab),
    "inspect": ("explain a run directory: outcome, failing node, time per node, VS plot", _cmd_inspect),
    "view": ("watch a run directory: a Rerun recording (.rrd) or a GIF with overlays", _cmd_view),
}


def build_parser() -> argparse.ArgumentParser:
    """The top-level parser: the main job (flags only) and the subcommands."""
    parser = Parser(prog="python -m app", description=__doc__,
                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tree", default="drl_gan_vs", help="behaviour tree to run (config/trees)")
    parser.add_argument("--show-tree", nargs="?", const="-", default=None, metavar="FILE",
                        help="print the tree (and write FILE.dot/.svg/.png if given) and exit")
    add_common(parser)
    add_gap(parser)
    sub = parser.add_subparsers(dest="command", parser_class=Parser,
                                metavar="{" + ",".join([*COMMANDS, "grasps", "compliant"]) + "}")
    for name, (help_text, _) in COMMANDS.items():
        sp = sub.add_parser(name, help=help_text)
        add_common(sp)
        if name == "bench":
            sp.add_argument("what", choices=["sim", "pipeline", "campaign"], help="what to time")
            sp.add_argument("--json", action="store_true", help="print one JSON object")
            sp.add_argument("--n", type=int, default=None,
                            help="samples per measurement (sim: 50; pipeline: 160 per variant)")
            sp.add_argument("--no-compile", action="store_true", help="pipeline: skip the torch.compile variant")
            sp.add_argument("--threads", type=int, default=None,
                            help="torch threads (pipeline: default 1 and 2; campaign: default 1, as a worker)")
            sp.add_argument("--out", default=None, help="also write the JSON to this file")
            sp.add_argument("--trees", default=None, help="campaign: comma-separated trees (default drl_gan_vs,vs_only)")
            sp.add_argument("--per-tree", type=int, default=3, help="campaign: trials per tree (first N seen objects)")
            sp.add_argument("--compare", action="store_true",
                            help="campaign: run every trial also with every speed lever off (before/after)")
        if name == "dataset":
            sp.add_argument("--out", required=True, help="dataset directory (validation set in OUT/val)")
            sp.add_argument("--n", type=int, default=655, help="images per domain (the paper: 655)")
            from app.tools.real_dataset import add_collection_arguments

            add_collection_arguments(sp)
        if name == "train":
            sp.add_argument("what", choices=["gan", "ppo"], help="which model")
            sp.add_argument("--recipe", default=None, help="recipe name or YAML (default the shipped config/models/cyclegan_both.yaml, or ppo.yaml)")
            sp.add_argument("--data", default=None, help="dataset directory (gan)")
            sp.add_argument("--out", default=None, help="run directory (checkpoints, logs, curves)")
            sp.add_argument("--resume", action="store_true", help="continue from the run directory's checkpoint")
            sp.add_argument("--epochs", type=int, default=None, help="total epochs instead of the recipe's (gan)")
            sp.add_argument("--limit", type=int, default=None, help="use only the first N images per domain (gan)")
            sp.add_argument("--steps", type=int, default=None, help="total environment steps instead of the recipe's (ppo)")
        if name == "evaluate":
            from app.campaigns.evaluate import add_arguments

            add_arguments(sp)
        if name == "faults":
            from app.campaigns.faults import add_arguments as add_fault_arguments

            add_fault_arguments(sp)
        if name == "eval-models":
            sp.add_argument("--out", required=True, help="output directory (model_metrics.json, figures)")
            sp.add_argument("--images", type=int, default=100, help="held-out views per set for segmentation")
            sp.add_argument("--latency-frames", type=int, default=200, help="frames timed per thread count")
            sp.add_argument("--no-finger-template", action="store_true",
                            help="measure adapted frames without the gripper's sim look restored (app/fingers.py)")
            sp.add_argument("--dev-objects", default="",
                            help="extra object sets (names or YAML paths), segmentation IoU only (dev checks)")
            sp.set_defaults(episodes=50)
        if name == "lab":
            from app.tools.lab import add_arguments as add_lab_arguments

            add_lab_arguments(sp)
        if name == "calibrate":
            sp.add_argument("what", nargs="?", choices=["vs", "hand-eye"], default="vs",
                            help="vs: check the VS targets (default); hand-eye: solve the camera mount")
            sp.add_argument("--json", action="store_true", help="print JSON")
            sp.add_argument("--poses", type=int, default=12, help="views of the board (hand-eye)")
            sp.add_argument("--out", default=None, help="write the solved mount to this YAML (hand-eye)")
        if name == "inspect":
            sp.add_argument("run_dir", help="a run directory (under --log-dir)")
            sp.add_argument("--json", action="store_true", help="print one JSON object")
        if name == "view":
            sp.add_argument("run_dir", help="a run directory (images with --record)")
            sp.add_argument("--out", default=None, help="Rerun recording to write (default RUN_DIR/episode.rrd)")
            sp.add_argument("--spawn", action="store_true", help="also open the Rerun viewer on it")
            sp.add_argument("--gif", default=None, metavar="FILE.gif", help="write a GIF instead (or as well, with --out)")
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
            from app.tools.compliant import main as compliant_main

            return compliant_main(argv[1:])
        args = build_parser().parse_args(argv)
        if getattr(args, "scene", "single") != "single" and args.command not in (None, "evaluate"):
            from app.errors import ConfigError

            raise ConfigError(f"--scene {args.scene}: multi-object scenes run with the main job and `evaluate` only, "
                              f"not with `{args.command}`")
        if args.command is None:
            return _cmd_run(args)
        return COMMANDS[args.command][1](args)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return EXIT_INTERRUPT
    except AppError as e:
        print(f"error: {e}", file=sys.stderr)
        return e.exit_code
