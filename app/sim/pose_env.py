"""The pose agent's training environment (gymnasium), as SPEC.md describes it.

Observation: the wrist camera's RGB-D frame in the ``sim`` domain, rendered through the same
camera and domain code as the application and downscaled by
:func:`models.preprocess.policy_observation` to ``(4, S, S)`` float32. Action: a relative pose
``(dx, dy, dz, dyaw)`` in the gripper frame, each in [-1, 1] and scaled by ``config/env.yaml``.
Three steps per episode: steps 1 and 2 move ``step_z`` towards the table whatever the agent says
about z; step 3 takes z from the agent. Reward: equation (1) of the paper.

The arm is teleported to each pose (inverse kinematics, no physics between steps: the object is
at rest and nothing moves it), which is what makes ~100 steps/s possible on a CPU; the paper's
Unity simulator held only the gripper for the same reason.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

from app import CONFIG_DIR
from app.config import Section, load_yaml
from app.errors import ConfigError, MotionError
from app.sim.objects import ObjectSpec, load_object_set
from app.sim.session import SimSession
from app.transforms import Pose, delta_pose, wrap_half_pi
from models.preprocess import policy_observation


@dataclass(frozen=True)
class EnvConfig:
    """Training-environment parameters (see ``config/env.yaml``). Lengths m, angles rad."""

    objects: str
    domain: str
    steps: int
    step_z: float
    obs_size: int
    max_xy: float
    max_yaw: float
    z_range: tuple[float, float]
    lambda_d: float
    lambda_o: float
    lambda_g: float
    lambda_l: float
    lambda_n: float
    d_norm: float
    o_norm: float
    every_step: bool


def load_env_config(path: str | Path | None = None) -> EnvConfig:
    """Load and validate ``config/env.yaml``."""
    path = Path(path) if path else CONFIG_DIR / "env.yaml"
    root = Section(load_yaml(path), path)
    act, rew = root.section("action"), root.section("reward")
    zr = act.vector("z_range", 2, lo=-0.5, hi=0.5)
    if zr[0] >= zr[1]:
        raise ConfigError(f"{path}: key 'action.z_range': expected [min, max] with min < max, found {zr}")
    return EnvConfig(
        objects=root.string("objects"), domain=root.string("domain"),
        steps=root.integer("steps", lo=1, hi=10), step_z=root.number("step_z", lo=0.0, hi=0.3),
        obs_size=root.integer("obs_size", lo=16, hi=256),
        max_xy=act.number("max_xy", lo=0.0, hi=0.3), max_yaw=float(np.radians(act.number("max_yaw", lo=0, hi=180))),
        z_range=(zr[0], zr[1]),
        lambda_d=rew.number("lambda_d", lo=0), lambda_o=rew.number("lambda_o", lo=0),
        lambda_g=rew.number("lambda_g", lo=0), lambda_l=rew.number("lambda_l", lo=0),
        lambda_n=rew.number("lambda_n", lo=1e-6), d_norm=rew.number("d_norm", lo=1e-3),
        o_norm=float(np.radians(rew.number("o_norm", lo=1.0, hi=180.0))), every_step=rew.boolean("every_step"),
    )


def finger_yaw_error(gripper: Pose, grasp: Pose) -> float:
    """Angle (rad, in [0, pi/2]) between two finger lines; a parallel gripper is symmetric mod pi."""
    a = np.arctan2(gripper.matrix[1, 0], gripper.matrix[0, 0])
    b = np.arctan2(grasp.matrix[1, 0], grasp.matrix[0, 0])
    return abs(wrap_half_pi(float(a - b)))


def grasp_reward(cfg: EnvConfig, gripper: Pose, grasps: list[Pose], round_object: bool,
                 below_ground: bool) -> tuple[float, float, float]:
    """Equation (1): ``R = (λd (1 − e_d)² + λo (1 − e_o) + λg r_g − λl) / λn``.

    Args:
        cfg: Reward constants.
        gripper: Gripper pose (base frame).
        grasps: Good grasps (base frame); the nearest (by e_d + e_o) counts.
        round_object: Orientation is free (e_o = 0).
        below_ground: Any point of the gripper is below the table (r_g = −1).

    Returns:
        (R, e_d, e_o), e_d and e_o normalised to [0, 1].
    """
    best = (np.inf, 1.0, 1.0)
    for g in grasps:
        e_d = min(float(np.linalg.norm(gripper.position - g.position)) / cfg.d_norm, 1.0)
        e_o = 0.0 if round_object else min(finger_yaw_error(gripper, g) / cfg.o_norm, 1.0)
        if e_d + e_o < best[0]:
            best = (e_d + e_o, e_d, e_o)
    _, e_d, e_o = best
    r_g = -1.0 if below_ground else 0.0
    r = (cfg.lambda_d * (1 - e_d) ** 2 + cfg.lambda_o * (1 - e_o) + cfg.lambda_g * r_g - cfg.lambda_l) / cfg.lambda_n
    return float(r), e_d, e_o


class PoseEnv(gym.Env):
    """Three relative pose steps towards a good grasp, from wrist RGB-D images.

    Args:
        config: Environment parameters (default ``config/env.yaml``).
        objects: Object set name or path (default: the config's).
        domain: Appearance domain (default: the config's, ``sim``).
    """

    metadata = {"render_modes": []}

    def __init__(self, config: EnvConfig | None = None, objects: str | None = None,
                 domain: str | None = None) -> None:
        super().__init__()
        self.cfg = config or load_env_config()
        self.object_set = load_object_set(objects or self.cfg.objects)
        for spec in self.object_set.objects:
            if not spec.grasps:
                raise ConfigError(f"{self.object_set.path}: object {spec.name!r} has no good grasps "
                                  "(run `python -m app grasps`)")
        self.session = SimSession(domain=domain or self.cfg.domain, seed=0)
        s = self.cfg.obs_size
        self.observation_space = gym.spaces.Box(0.0, 1.0, (4, s, s), np.float32)
        self.action_space = gym.spaces.Box(-1.0, 1.0, (4,), np.float32)
        self._step = 0
        self.spec_obj: ObjectSpec | None = None
        self._grasps: list[Pose] = []

    def _observe(self) -> np.ndarray:
        f = self.session.camera.get_frame()
        return policy_observation(f.rgb, f.depth, self.cfg.obs_size)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[np.ndarray, dict]:
        """Start pose, a random seen object at a random pose in view. ``options``: ``object``."""
        super().reset(seed=seed)
        rng = self.np_random
        self.session.rng = self.session.camera.rng = np.random.default_rng(int(rng.integers(2**31)))
        name = (options or {}).get("object")
        self.spec_obj = self.object_set.get(name) if name else self.object_set.objects[
            int(rng.integers(len(self.object_set.objects)))]
        placement = self.session.sample_placement(self.spec_obj, rng)
        self.session.reset(self.spec_obj, placement, settle=True)
        self.session.camera.invalidate()
        self._grasps = self.session.truth.good_grasps()
        self._step = 0
        return self._observe(), {"object": self.spec_obj.name}

    def scale_action(self, action: np.ndarray, step: int) -> tuple[float, float, float, float]:
        """Map a [-1, 1]^4 action to (dx, dy, dz, dyaw) in metres/radians for pose step ``step`` (1-based)."""
        a = np.clip(np.asarray(action, dtype=np.float64).reshape(4), -1.0, 1.0)
        dx, dy = a[0] * self.cfg.max_xy, a[1] * self.cfg.max_xy
        lo, hi = self.cfg.z_range
        dz = self.cfg.step_z if step < self.cfg.steps else lo + (a[2] + 1) / 2 * (hi - lo)
        return float(dx), float(dy), float(dz), float(a[3] * self.cfg.max_yaw)

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict]:
        """One pose step: move by the scaled action, observe, reward."""
        self._step += 1
        dx, dy, dz, dyaw = self.scale_action(action, self._step)
        arm = self.session.arm
        target = arm.pose() @ delta_pose(dx, dy, dz, dyaw)
        try:
            arm.teleport(target)
            reached = True
        except MotionError:
            reached = False  # unreachable: stay; the reward shows it
        self.session.camera.invalidate()  # the arm moved without time passing
        grip = arm.pose()
        below = self.session.world.gripper_min_z() < 0.0
        r, e_d, e_o = grasp_reward(self.cfg, grip, self._grasps, self.spec_obj.round, below)
        done = self._step >= self.cfg.steps
        if not self.cfg.every_step and not done:
            r = 0.0
        info = {"e_d": e_d, "e_o": e_o, "reached": reached, "below_ground": below, **self.pose_errors()}
        return self._observe(), r, done, False, info

    def pose_errors(self) -> dict[str, float | None]:
        """Horizontal distance (m) from the gripper axis to the object centroid, and yaw error
        (deg) of the finger line to the object's grasp axis (None for round objects)."""
        grip = self.session.arm.pose()
        obj = self.session.truth.object_pose()
        axis = grip.matrix[:, 2]  # approach axis (base frame)
        rel = obj.position - grip.position
        off = rel - axis * float(rel @ axis)
        pos = float(np.linalg.norm(off[:2]))
        gy = self.session.truth.grasp_axis_yaw()
        yaw = None if gy is None else float(abs(np.degrees(wrap_half_pi(grip.yaw - gy))))
        return {"pos_error_m": pos, "yaw_error_deg": yaw}

    def close(self) -> None:
        """Release the simulator."""
        self.session.close()
