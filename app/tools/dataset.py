"""``python -m app dataset``: the CycleGAN dataset, rendered (:mod:`app.tools.dataset_builder`)
or with the real half collected on the robot (``--backend real``, :mod:`app.tools.real_dataset`).

The command's entry sits above both builders, so neither imports the other's caller.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable

from app.errors import ConfigError
from app.outputs import check_output_dir, owned, prepare_output_dir
from app.robot.interfaces import Robot
from app.tools.dataset_builder import build_dataset
from app.tools.real_dataset import collect_real
from models.dataset import read_index


def run_dataset(args: argparse.Namespace, connect: Callable[[], Robot] | None = None,
                ask: Callable[[str], str] = input) -> int:
    """Entry point of ``python -m app dataset``.

    Args:
        args: The parsed command line (``--backend real`` also reads ``prompt_every``,
            ``no_prompt``, ``config`` and ``robot_host``).
        connect: Opens the real robot (tests pass the fake's); default the RealSession.
        ask: Shows a prompt and returns the person's answer (``--backend real`` without
            ``--no-prompt``; default ``input``).

    Raises:
        StoppedByPerson: ``q`` at a prompt of the real collection (exit code 130; images kept).
    """
    check_output_dir(args.out, "--out")  # before any work: one line and exit 2
    if args.n < 1:
        raise ConfigError(f"--n: expected >= 1, found {args.n}")
    if args.backend == "real" and args.prompt_every < 1:
        raise ConfigError(f"--prompt-every: expected >= 1, found {args.prompt_every}")
    with owned(prepare_output_dir(args.out, "--out", command="dataset", lock=True)):
        if args.backend == "real":
            collect_real(args, connect, ask)
        else:
            build_dataset(args.out, args.n, args.seed, objects=args.objects, real_domain=args.domain)
    idx = read_index(args.out)
    print(json.dumps({d: len(v) for d, v in idx["domains"].items()}), "samples in", args.out)
    return 0
