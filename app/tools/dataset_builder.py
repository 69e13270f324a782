"""The CycleGAN dataset in the simulator, from the poses the robot visits (``python -m app
dataset``, :mod:`app.tools.dataset`).

Sim-domain images (with ground-truth masks) and real-domain images (no masks) come from
independent seeds and scenes: paired renders are for evaluation only. Camera poses are drawn
from a scripted distribution of where the grasp tree takes the camera: the start pose, after
each 15 cm pose step, along VS trajectories (lower, offset, rotated) and with the object near
the image border, all around the object (:func:`sample_camera_delta`). The simulator aims at the
true object; ``--backend real`` (:mod:`app.tools.real_dataset`) collects the real half with the
robot through the ``Camera``/``Arm`` interfaces only: it finds the object from depth in the start
view, homes the arm and asks the person to move or swap the object every ``--prompt-every``
images (``--no-prompt``: unattended), and every move goes through the safety envelope.
Resumable: finished samples are kept; ``index.json`` is rewritten every 25 samples and at the end
(after every sample on the robot).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from app.outputs import write_guard
from app.transforms import delta_pose
from models.dataset import read_index, sample_id, write_index, write_sample

#: Kinds of camera pose and their share of the dataset.
POSE_KINDS = {"start": 0.15, "after_step_1": 0.2, "after_step_2": 0.25, "servoing": 0.3, "border": 0.1}
VAL_FRACTION = 0.1  # held-out validation samples per domain, from other seeds
SEED_STRIDE = 1_000_003  # seeds of the sim, real and validation streams never overlap


def sample_camera_delta(kind: str, rng: np.random.Generator, object_offset: np.ndarray) -> tuple[float, float, float, float]:
    """A relative gripper move (dx, dy, dz in m, dyaw in rad) from the start pose for ``kind``.

    Args:
        kind: One of :data:`POSE_KINDS`.
        rng: Random generator.
        object_offset: Object (x, y) relative to the start gripper axis, gripper frame (m).
    """
    if kind == "start":
        return 0.0, 0.0, 0.0, 0.0
    if kind in ("after_step_1", "after_step_2"):  # a partly corrected pose step
        dz = 0.15 if kind == "after_step_1" else 0.30
        frac = rng.uniform(0.0, 1.0)
        dx, dy = object_offset * frac + rng.normal(0, 0.015, 2)
        return float(dx), float(dy), dz, float(rng.uniform(-np.pi / 2, np.pi / 2))
    if kind == "servoing":  # near the object at VS heights, small residual offsets
        dx, dy = object_offset + rng.normal(0, 0.02, 2)
        return float(dx), float(dy), float(rng.uniform(0.20, 0.32)), float(rng.uniform(-np.pi / 2, np.pi / 2))
    # border: object towards an image edge at a low height
    angle = rng.uniform(0, 2 * np.pi)
    dz = float(rng.uniform(0.15, 0.30))
    reach = 0.27 * (0.6 - dz) / 0.6 * 0.45  # ~ the half-width of the view at that height (m)
    dx, dy = object_offset - reach * np.array([np.cos(angle), np.sin(angle)])
    return float(dx), float(dy), dz, float(rng.uniform(-np.pi / 2, np.pi / 2))


def build_sim_split(out: Path, n: int, seed: int, domain: str, with_mask: bool, objects: str,
                    desc: str, samples: list[dict[str, Any]]) -> None:
    """Render ``n`` samples of one domain into ``out`` (sim backend), appending to ``samples``."""
    from tqdm import tqdm

    from app.sim.objects import load_object_set
    from app.sim.session import SimSession

    oset = load_object_set(objects)
    specs = [o for o in oset.objects if o.shape != "soft"]
    done = {s["id"] for s in samples}
    dom = "sim" if with_mask else "real"
    kinds, probs = list(POSE_KINDS), np.array(list(POSE_KINDS.values()))
    with SimSession(domain=domain, seed=seed) as s:
        for i in tqdm(range(n), desc=desc, unit="img", mininterval=2):
            sid = sample_id(i)
            if sid in done:
                continue
            rng = np.random.default_rng([seed, i])
            spec = specs[int(rng.integers(len(specs)))]
            s.rng = s.camera.rng = rng
            obj = s.reset(spec, s.sample_placement(spec, rng), settle=True)
            start = s.arm.pose()
            offset = start.inverse().apply(obj.position)[:2]
            kind = kinds[int(rng.choice(len(kinds), p=probs / probs.sum()))]
            dx, dy, dz, dyaw = sample_camera_delta(kind, rng, offset)
            try:
                s.arm.teleport(start @ delta_pose(dx, dy, dz, dyaw))
            except Exception:  # an unreachable sample pose: keep the start view instead
                kind = "start"
            s.camera.invalidate()
            frame = s.camera.get_frame()
            mask = s.truth.last_mask() if with_mask else None
            write_sample(out, dom, sid, frame.rgb, frame.depth, mask)
            samples.append({"id": sid, "object": spec.name, "kind": kind, "seed": seed})
            if len(samples) % 25 == 0:
                save_domain(out, samples, dom)


def save_domain(out: Path, samples: list[dict[str, Any]], dom: str) -> None:
    """Rewrite ``out/index.json`` with ``samples`` as domain ``dom`` (the other domain kept)."""
    prev = existing_samples(out)
    prev[dom] = samples
    write_index(out, prev, 128, 128, {"note": "built by python -m app dataset"})


def existing_samples(out: Path) -> dict[str, list[dict[str, Any]]]:
    """The samples ``out/index.json`` lists per domain (none when there is no readable index)."""
    try:
        idx = read_index(out)
        return {d: list(idx["domains"][d]) for d in ("sim", "real")}
    except Exception:
        return {"sim": [], "real": []}


def build_dataset(out: str | Path, n: int, seed: int, objects: str = "seen", sim_domain: str = "sim",
                  real_domain: str = "real") -> Path:
    """Build the training set in ``out`` and the validation set in ``out/val`` (simulator)."""
    out = Path(out)
    for split, count, base in (("train", n, seed), ("val", max(1, int(round(n * VAL_FRACTION))), seed + 7)):
        d = out if split == "train" else out / "val"
        with write_guard(d):
            d.mkdir(parents=True, exist_ok=True)
        existing = existing_samples(d)
        for dom, domain, stream in (("sim", sim_domain, 0), ("real", real_domain, 1)):
            samples = existing[dom]
            build_sim_split(d, count, base + SEED_STRIDE * (stream + 1), domain,
                            dom == "sim", objects, f"{split} {dom}", samples)
            save_domain(d, samples, dom)
        info = {"n": count, "seed": base, "objects": objects, "sim_domain": sim_domain, "real_domain": real_domain}
        idx = existing_samples(d)
        from app.sim.domain import load_domain

        info["domain_sha256"] = {"sim": load_domain(sim_domain).sha256, "real": load_domain(real_domain).sha256}
        write_index(d, idx, 128, 128, info)
    return out
