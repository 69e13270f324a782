"""``python -m app compliant``: generate the compliant objects' URDFs and meshes into the repo.

The builder is :mod:`app.sim.compliant`; this is its command (and, with ``--pictures``, a PNG of
the objects at rest and held in the gripper, rendered by :mod:`app.sim.compliant_pictures`).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from app.errors import AppError
from app.sim.compliant import URDF_DIR, write_urdfs
from app.sim.objects import load_objects

PROG = "python -m app compliant"


def main(argv: list[str] | None = None, prog: str = PROG) -> int:
    """Generate the URDFs of every compliant object of the given sets.

    Returns:
        0 on success, 2 on a configuration error.
    """
    ap = argparse.ArgumentParser(prog=prog, description="Generate the URDFs of every compliant object of the given sets.")
    ap.add_argument("--objects", default="seen,unseen", help="object sets or YAML paths, comma-separated")
    ap.add_argument("--out", type=Path, default=URDF_DIR, help="directory to write the URDFs to")
    ap.add_argument("--pictures", type=Path, default=None, metavar="PNG",
                    help="then render the compliant objects at rest and held in the gripper into this PNG")
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["--"]:
        argv = argv[1:]
    args = ap.parse_args(argv)
    try:
        specs = [s for _, s in load_objects(args.objects)]
        written = write_urdfs(specs, args.out)
    except AppError as e:
        print(f"error: {e}", file=sys.stderr)
        return e.exit_code
    except OSError as e:  # an output folder that cannot be written: one line, exit 2
        print(f"error: --out {args.out}: cannot write ({e.strerror or e})", file=sys.stderr)
        return 2
    for path in written:
        print(f"wrote {path}")
    if not written:
        print(f"no compliant objects in {args.objects}")
    if args.pictures is not None and written:
        from app.sim.compliant_pictures import write_picture

        try:
            print(f"wrote {write_picture([s for s in specs if s.compliance is not None], args.pictures)}")
        except OSError as e:
            print(f"error: --pictures {args.pictures}: cannot write ({e.strerror or e})", file=sys.stderr)
            return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(prog="python -m app.tools.compliant"))
