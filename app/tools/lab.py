"""``python -m app lab``: make the models yours in a new lab, in one command.

The method's promise is one pose agent trained in simulation and one small real data set per
lab. Given the lab's appearance domain (``--domain PATH.yaml``; ``--backend real`` collects the
images with the robot instead), the command runs these stages in ``OUT``:

1. ``dataset``  — ``OUT/data``: sim images (with masks, the ``sim`` domain the agent trained in)
   and the lab's images, plus a validation set (:mod:`app.tools.dataset_builder`);
2. ``train``    — ``OUT/train``: the semantic CycleGAN with the shipped recipe (``--recipe``,
   ``--epochs`` to override; :mod:`models.train_gan`);
3. ``weights``  — ``OUT/weights``: the new ``cyclegan.pt``, the source weights' pose agent
   (``--weights``, default the shipped ones: it is not retrained), the camera and the domain
   they were trained for (:mod:`app.weights_domain`);
4. ``eval_models`` — ``OUT/eval_models``: ``eval-models`` in the lab's domain with the new weights;
5. ``before``   — ``OUT/before``: a short evaluation (``drl_gan_vs``, seen objects, ``--trials``
   each) of the source weights in the lab (skipped with ``--no-before``);
6. ``after``    — ``OUT/after``: the same evaluation with the lab's own weights.

With ``--backend real`` the lab's images come from the robot (:mod:`app.tools.real_dataset`:
homed, the object found from depth in the start view, scripted poses around it, every move
through the safety envelope, and every ``--prompt-every`` images the arm homed and the person
asked to move or swap the object, ``--no-prompt`` for unattended runs; the sim images are
rendered as in the simulator), the weights record the robot lab
(name ``robot``, the SHA-256 of the collected index), and the stages that need paired sim
renders or simulated trials (``eval_models``, ``before``, ``after``) are left to the robot
(``python -m app --tree drl_gan_vs --backend real --weights OUT/weights``).

Then ``OUT/summary.md``. One progress bar counts the stages (each stage's own bar runs under
it). Each finished stage leaves ``OUT/stages/NAME.done``; ``--resume`` skips those and resumes
the interrupted one with its own resume (dataset samples kept, training from its last epoch,
campaign trials kept), so a kill at any point loses at most the stage's current unit of work.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from app.campaigns.engine import SPLITS
from app.command import add_gap
from app.errors import ConfigError
from app.outputs import atomic_write_text, check_output_dir, owned, prepare_output_dir, write_guard
from app.robot.interfaces import Robot
from models import SHIPPED_GAN_RECIPE

STAGES = ("dataset", "train", "weights", "eval_models", "before", "after")
MARKERS = "stages"  # OUT/stages/NAME.done: the stage finished
TREE = "drl_gan_vs"  # the method, as the short evaluation's tree
DEFAULT_TRIALS = 2  # trials per seen object in the short evaluations (issue 11 §5)
DEFAULT_EVAL_EPISODES = 30  # eval-models pose episodes per object set
DEFAULT_EVAL_IMAGES = 60  # eval-models views per object set
DEFAULT_SPLIT = "test"  # the short evaluations report a lab's result: test seeds (README "Dev and test seeds")
POLICY_FILES = ("policy.pt", "ppo_config.yaml", "ppo_env.yaml")  # the pose agent, copied unchanged
GAN_FILES = {"cyclegan.pt": "cyclegan.pt", "config.yaml": "cyclegan_config.yaml", "losses.csv": "cyclegan_losses.csv"}


def _done(out: Path, stage: str) -> bool:
    """Whether ``stage`` left its marker in ``out``."""
    return (out / MARKERS / f"{stage}.done").is_file()


def _mark(out: Path, stage: str, seconds: float) -> None:
    """Leave ``stage``'s marker (with its wall time in s), written whole (atomic rename)."""
    with write_guard(out / MARKERS):
        (out / MARKERS).mkdir(exist_ok=True)
    atomic_write_text(out / MARKERS / f"{stage}.done", json.dumps({"stage": stage, "seconds": round(seconds, 1)}) + "\n")


SIM_ONLY = ("eval_models", "before", "after")  # need paired sim renders or simulated trials
ROBOT_DOMAIN = "robot"  # the training-domain name of weights trained on images from the robot


def _stage_dataset(a: argparse.Namespace, out: Path, connect: Callable[[], Robot] | None = None) -> None:
    """``OUT/data``: sim images with masks and the lab's images (simulator or robot); resumable."""
    from app.tools.dataset import run_dataset
    from app.tools.real_dataset import build_robot_dataset

    ns = argparse.Namespace(out=str(out / "data"), n=a.n, seed=a.seed, objects="seen", domain=a.domain or "real",
                            backend=a.backend, config=a.config, robot_host=a.robot_host,
                            prompt_every=a.prompt_every, no_prompt=a.no_prompt)
    if a.backend == "real":
        build_robot_dataset(ns, connect)
    else:
        run_dataset(ns)


def _stage_train(a: argparse.Namespace, out: Path) -> None:
    """``OUT/train``: the CycleGAN, resumed from its last epoch when a training state is there."""
    from models.train_gan import train_gan

    run = out / "train"
    train_gan(a.recipe, out / "data", run, resume=(run / "train_state.pt").exists(), epochs_override=a.epochs)


def _stage_weights(a: argparse.Namespace, out: Path) -> None:
    """``OUT/weights``: the new GAN, the source policy, the training camera and the lab's domain."""
    from app.hardware_config import TRAINING_CAMERA_FILE
    from app.perception import WEIGHTS_DIR, load_perception
    from app.sim.domain import load_domain
    from app.weights_domain import write_training_domain

    src, run, dst = Path(a.weights) if a.weights else WEIGHTS_DIR, out / "train", out / "weights"
    with write_guard(dst):
        dst.mkdir(parents=True, exist_ok=True)
        for name in POLICY_FILES:
            if (src / name).is_file():
                shutil.copyfile(src / name, dst / name)
        for s, d in GAN_FILES.items():
            shutil.copyfile(run / s, dst / d)
        camera = run / TRAINING_CAMERA_FILE
        shutil.copyfile(camera if camera.is_file() else src / TRAINING_CAMERA_FILE, dst / TRAINING_CAMERA_FILE)
    if a.backend == "real":
        from app.config import file_sha256

        write_training_domain(dst, ROBOT_DOMAIN, file_sha256(out / "data" / "index.json"))
    else:
        dom = load_domain(a.domain)
        write_training_domain(dst, dom.name, dom.sha256)
    load_perception(dst, fingers=False)  # the new directory loads (one line and exit 2 if not)


def _stage_eval_models(a: argparse.Namespace, out: Path) -> None:
    """``OUT/eval_models``: the lab's weights on paired images of the lab's domain."""
    from app.tools.eval_models import evaluate_models

    evaluate_models(out / "eval_models", seed=a.seed, episodes=a.eval_episodes, weights_dir=out / "weights",
                    images=a.eval_images, latency_frames=a.latency_frames, domain=a.domain, hardware=a.config)


def _campaign(a: argparse.Namespace, out: Path, name: str, weights: str | None) -> None:
    """``OUT/NAME``: ``drl_gan_vs`` on the seen objects in the lab with ``weights``; resumed trial by trial."""
    from app.campaigns.evaluate import run_evaluate

    d = out / name
    ns = argparse.Namespace(out=str(d), trees=TREE, objects="seen", trials=a.trials, seed=a.seed, domain=a.domain,
                            split=a.split, gap=a.gap,
                            config=a.config, record=False, weights=weights, workers=a.workers,
                            resume=(d / "results.jsonl").exists(), object=getattr(a, "object", None),
                            summarize_only=False, backend="sim")
    run_evaluate(ns)


def _stage_before(a: argparse.Namespace, out: Path) -> None:
    """The source weights (trained for another lab) in this lab."""
    _campaign(a, out, "before", a.weights)


def _stage_after(a: argparse.Namespace, out: Path) -> None:
    """The lab's own weights in this lab."""
    _campaign(a, out, "after", str(out / "weights"))


RUNNERS: dict[str, Callable[[argparse.Namespace, Path], None]] = {
    "dataset": _stage_dataset, "train": _stage_train, "weights": _stage_weights,
    "eval_models": _stage_eval_models, "before": _stage_before, "after": _stage_after,
}


def _rate(summary: dict[str, Any]) -> str:
    """``k/n = p %`` of the tree on the seen objects in a campaign summary."""
    v = summary["trees"][TREE]["seen"]
    return f"{v['successes']}/{v['trials']} = {100.0 * v['successes'] / max(1, v['trials']):.0f} %"


def write_summary(a: argparse.Namespace, out: Path, seconds: dict[str, float]) -> str:
    """``OUT/summary.md`` from the stages' own files (dataset index, losses, metrics, campaigns)."""
    from app.sim.domain import load_domain
    from app.sim.gap import gap_argument

    if a.backend == "real":
        lines = ["# Lab on the robot", "", f"Command: `{command_line(a)}`", "",
                 f"Images from the robot at {a.robot_host}; seed {a.seed}.", ""]
    else:
        dom = load_domain(a.domain)
        lines = [f"# Lab `{dom.name}`", "", f"Command: `{command_line(a)}`", "",
                 f"Domain file `{a.domain}`, SHA-256 `{dom.sha256}`; seed {a.seed}; backend {a.backend}; "
                 f"evaluations on `{a.split}` seeds, physical gap `{gap_argument(a)}`.", ""]
    idx = json.loads((out / "data" / "index.json").read_text())
    lines += [f"- dataset: {len(idx['domains']['sim'])} sim + {len(idx['domains']['real'])} lab images (`data/`)"]
    losses = (out / "train" / "losses.csv").read_text().splitlines()
    lines += [f"- CycleGAN: {len(losses) - 1} epochs, recipe `{a.recipe}` (`train/`, weights in `weights/`)"]
    if a.backend == "real":
        lines += ["", "Not measured here (they need paired sim renders or simulated trials): evaluate the lab's "
                  f"weights on the robot with `python -m app --tree drl_gan_vs --backend real --weights {out / 'weights'} "
                  "--episodes 20`.", "", "Stage times (s): " + ", ".join(f"{k} {v:.0f}" for k, v in seconds.items()), ""]
        text = "\n".join(lines)
        atomic_write_text(out / "summary.md", text)
        return text
    m = json.loads((out / "eval_models" / "model_metrics.json").read_text())
    p, seg, ad = m["pose"], m["segmentation_iou"], m["adaptation_error"]

    def f(x: float | None, scale: float = 1.0, nd: int = 2) -> str:
        return "–" if x is None else f"{x * scale:.{nd}f}"

    lines += ["", "## The lab's own weights on paired images (`eval_models/model_metrics.json`)", "",
              "| pose agent after 3 steps | position median | yaw median | within ±5 cm and ±30° |", "|---|---|---|---|"]
    for mode, label in (("sim", "sim images"), ("real_raw", "raw lab images"), ("real_adapted", "adapted lab images")):
        lines.append(f"| {label} | {f(p[mode]['pos_median_m'], 100, 1)} cm | {f(p[mode]['yaw_median_deg'], 1, 1)}° "
                     f"| {f(p[mode]['within_both'], 100, 0)} % |")
    lines += ["", "| segmentation IoU | seen | unseen |", "|---|---|---|",
              f"| D_X on the adapted image | {f(seg['discriminator']['seen'])} | {f(seg['discriminator']['unseen'])} |",
              f"| D_Y on the raw image | {f(seg['discriminator_raw']['seen'])} | {f(seg['discriminator_raw']['unseen'])} |",
              "", f"Adaptation error: RGB {f(ad['rgb_mae'], 1, 1)} (0–255), depth {f(ad['depth_mae_m'], 100, 1)} cm.", ""]
    lines += ["## Short evaluation: `drl_gan_vs`, seen objects, "
              f"{a.trials} trial(s) each, grasped (physics)", "", "| weights | grasped |", "|---|---|"]
    for name, label in (("before", f"source (`{a.weights or 'models/weights'}`), trained for another lab"),
                        ("after", "this lab's own (`weights/`)")):
        s = out / name / "summary.json"
        if s.is_file():
            lines.append(f"| {label} | {_rate(json.loads(s.read_text()))} |")
    lines += ["", "Stage times (s): " + ", ".join(f"{k} {v:.0f}" for k, v in seconds.items()), ""]
    text = "\n".join(lines)
    atomic_write_text(out / "summary.md", text)
    return text


def command_line(a: argparse.Namespace) -> str:
    """The command that reproduces this lab (flags at their defaults left out)."""
    from app.tools.real_dataset import DEFAULT_PROMPT_EVERY

    cmd = "python -m app lab" + (f" --domain {a.domain}" if a.domain else "") + f" --out {a.out} --n {a.n} --seed {a.seed}"
    flags: list[tuple[str, Any, Any]] = [
        ("--epochs", a.epochs, None), ("--recipe", a.recipe, SHIPPED_GAN_RECIPE), ("--trials", a.trials, DEFAULT_TRIALS),
        ("--weights", a.weights, None), ("--eval-episodes", a.eval_episodes, DEFAULT_EVAL_EPISODES),
        ("--eval-images", a.eval_images, DEFAULT_EVAL_IMAGES), ("--backend", a.backend, "sim"),
        ("--split", a.split, DEFAULT_SPLIT), ("--gap", a.gap, None)]
    if a.backend == "real":  # the robot's collection
        flags.append(("--prompt-every", a.prompt_every, DEFAULT_PROMPT_EVERY))
    for flag, value, default in flags:
        if value != default:
            cmd += f" {flag} {value}"
    return cmd + (" --no-before" if a.no_before else "") + (" --no-prompt" if a.backend == "real" and a.no_prompt else "")


def run_lab(a: argparse.Namespace, connect: Callable[[], Robot] | None = None) -> int:
    """Run (or resume) every stage, then write ``OUT/summary.md``. Returns 0 when done.

    Args:
        a: The parsed command line.
        connect: Opens the real robot for ``--backend real`` (tests pass the fake's); default the RealSession.
    """
    from tqdm import tqdm

    from app.sim.domain import load_domain

    if not a.domain and a.backend != "real":
        raise ConfigError("lab: --domain PATH.yaml is required (the lab's appearance domain, schema of config/domains/real.yaml)")
    out = check_output_dir(a.out, "--out")  # before any work: one line and exit 2
    if a.n < 1 or a.trials < 1 or (a.epochs is not None and a.epochs < 1):
        raise ConfigError(f"lab: expected --n, --trials and --epochs >= 1, found {a.n}, {a.trials}, {a.epochs}")
    if a.backend == "real" and a.prompt_every < 1:
        raise ConfigError(f"lab: --prompt-every: expected >= 1, found {a.prompt_every}")
    if a.backend != "real":
        load_domain(a.domain)  # a bad domain file: one line now, not after the dataset
    from models.cyclegan import load_gan_config

    load_gan_config(a.recipe)  # a bad recipe: one line now
    stages = [s for s in STAGES if not (s == "before" and a.no_before) and not (a.backend == "real" and s in SIM_ONLY)]
    with owned(prepare_output_dir(out, "--out", command="lab", lock=True)):
        started = [s for s in STAGES if _done(out, s)] or (out / "data").exists()
        if started and not a.resume:
            raise ConfigError(f"{out}: a lab run is there (expected --resume to continue it, or another --out)")
        seconds: dict[str, float] = {}
        with tqdm(total=len(stages), desc="lab", unit="stage", file=sys.stderr, position=0,
                  dynamic_ncols=True) as bar:
            for stage in stages:
                bar.set_description(f"lab: {stage}")
                if _done(out, stage):
                    seconds[stage] = json.loads((out / MARKERS / f"{stage}.done").read_text())["seconds"]
                    bar.update()
                    continue
                t0 = time.monotonic()
                if stage == "dataset":
                    _stage_dataset(a, out, connect)
                else:
                    RUNNERS[stage](a, out)
                seconds[stage] = time.monotonic() - t0
                _mark(out, stage, seconds[stage])
                bar.update()
        text = write_summary(a, out, seconds)
    print(text)
    where = f"--domain {a.domain}" if a.backend != "real" else "--backend real"
    print(f"lab done: {out / 'summary.md'}; use its weights with --weights {out / 'weights'} {where}")
    return 0


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The lab command's own flags (``--domain``, ``--seed``, ``--backend``, ``--config``,
    ``--weights``, ``--robot-host`` come from :func:`app.command.add_common`)."""
    p.add_argument("--out", required=True, help="lab directory (data, train, weights, eval_models, before, after, summary.md)")
    p.add_argument("--resume", action="store_true", help="continue an interrupted lab run in OUT")
    p.add_argument("--n", type=int, default=655, help="images per domain (the paper: 655)")
    p.add_argument("--recipe", default=SHIPPED_GAN_RECIPE, help="CycleGAN recipe name or YAML (default the shipped one)")
    p.add_argument("--epochs", type=int, default=None, help="CycleGAN epochs instead of the recipe's")
    p.add_argument("--trials", type=int, default=DEFAULT_TRIALS, help="trials per seen object in the short evaluations")
    p.add_argument("--split", choices=SPLITS, default=DEFAULT_SPLIT,
                   help="seed stream of the short evaluations (default test: they report; dev to tune)")
    add_gap(p)  # --gap of the short evaluations (default: lab)
    p.add_argument("--workers", type=int, default=None, help="campaign worker processes (default: the number of cores)")
    p.add_argument("--eval-episodes", type=int, default=DEFAULT_EVAL_EPISODES, help="eval-models pose episodes per set")
    p.add_argument("--eval-images", type=int, default=DEFAULT_EVAL_IMAGES, help="eval-models views per set")
    p.add_argument("--latency-frames", type=int, default=50, help="eval-models frames timed per thread count")
    p.add_argument("--no-before", action="store_true", help="skip the evaluation of the source weights in the lab")
    from app.tools.real_dataset import add_collection_arguments

    add_collection_arguments(p)  # --prompt-every, --no-prompt (the robot's collection)
    p.set_defaults(domain=None)
