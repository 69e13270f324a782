"""A simulated robot session: world + backends + object placement, and the evaluation accessor.

``SimSession.robot`` is what behaviours get (the ``Camera``/``Arm``/``Gripper`` interfaces);
``SimSession.truth`` is the ground truth, for the oracle tree and the scoring code only.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from app.errors import SimulationError
from app.hardware_config import HardwareConfig, load_hardware
from app.robot.interfaces import Robot
from app.sim.backends import SimArm, SimCamera, SimClock, SimGripper
from app.sim.compliant import Springs, build_model, checked_urdf, write_urdfs
from app.sim.domain import Domain, load_domain
from app.sim.gap import NONE_SAMPLE, GapSample, apply_gap
from app.sim.objects import ObjectSpec
from app.sim.pybullet_world import REST_POSE, PyBulletWorld
from app.sim.truth import GroundTruth
from app.transforms import Pose, rot_z

SETTLE_S = 0.5  # s of physics after dropping an object so it comes to rest


class SimSession:
    """The embedded simulator as one robot.

    Args:
        hardware: Robot geometry and camera (default: ``config/hardware.yaml``).
        domain: Appearance domain name, path or loaded :class:`Domain` (default ``real``).
        seed: Seed of the sensor noise.
        deformable: Build a world that can hold soft objects.
    """

    def __init__(self, hardware: HardwareConfig | None = None, domain: Domain | str = "real",
                 seed: int = 0, deformable: bool = False) -> None:
        self.hw = hardware or load_hardware()
        self.domain = domain if isinstance(domain, Domain) else load_domain(domain)
        self.world = PyBulletWorld(deformable=deformable)
        self.rng = np.random.default_rng(seed)
        self.arm = SimArm(self.world, self.hw)
        self.gripper = SimGripper(self.world, self.hw)
        self.camera = SimCamera(self.world, self.arm, self.hw, self.domain, self.rng)
        self.clock = SimClock(self.world, self.arm, self.gripper, self.hw.period, camera=self.camera)
        self.robot = Robot(self.camera, self.arm, self.gripper, self.clock, backend="sim")
        self.object: ObjectSpec | None = None
        self.gap: GapSample = NONE_SAMPLE  # the physical gap of the episode (set_gap; ground truth)
        self.truth = GroundTruth(self)
        self.arm.teleport(self.hw.start_pose())

    def close(self) -> None:
        """Disconnect the physics server."""
        self.world.close()

    def __enter__(self) -> SimSession:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def set_gap(self, sample: GapSample) -> None:
        """Use this physical gap from the next :meth:`reset` on (camera and arm at once)."""
        apply_gap(self, sample)

    def sample_placement(self, spec: ObjectSpec, rng: np.random.Generator) -> Pose:
        """A random object pose in the camera's view at the start pose (resting height)."""
        r = self.hw.object_xy_range
        centre = self.hw.start_position[:2]
        xy = centre + rng.uniform(-r, r, 2)
        yaw = rng.uniform(-np.pi, np.pi)
        z = self.world.table_z + spec.rest_height + 0.002  # 2 mm drop onto the table
        return Pose(np.array([xy[0], xy[1], z]), rot_z(yaw))

    def reset(self, spec: ObjectSpec, placement: Pose | int | None = None, settle: bool = True) -> Pose:
        """Arm to the start pose with the gripper open, and ``spec`` placed on the table.

        Args:
            spec: The object.
            placement: Object pose, or a seed for :meth:`sample_placement` (None: seed 0).
            settle: Let physics settle the object before returning.

        Returns:
            The object pose after settling (ground truth; callers outside scoring ignore it).
        """
        if spec.shape == "soft" and not self.world.deformable:
            raise SimulationError(f"object {spec.name!r} is soft: create the session with deformable=True")
        self.camera.restart_stream()  # no captures while the world is rebuilt
        designed = spec
        spec = self.gap.scale_object(spec)  # the object as built (mass, friction, size)
        self.world.set_table_height(self.gap.table_dz)
        if not isinstance(placement, Pose):
            placement = self.sample_placement(spec, np.random.default_rng(placement or 0))
        # Back to the rest posture first: IK seeds from the current joints, so without this the
        # arm's redundant joints drift episode after episode until the start pose is unreachable.
        self.world.reset_arm(REST_POSE, finger_width=self.hw.max_width)
        self.arm.teleport(self.hw.start_pose())
        self.world.reset_arm(self.world.joint_positions(), finger_width=self.hw.max_width)
        self.gripper.open()
        w = self.world
        if spec.shape == "soft":
            assert spec.soft is not None
            w.spawn_soft(spec.asset_path, spec.mass, spec.friction, spec.soft.mu, spec.soft.lam,
                         spec.soft.damping, self.domain.object_rgba(spec.color), placement)
        elif spec.compliance is not None:
            urdf = checked_urdf(designed)  # the shipped URDF must match the YAML
            if spec != designed:  # the physical gap resized it: this episode's variant, beside the world
                urdf = str(write_urdfs([spec], Path(w.temp_dir) / "compliant")[0])
            w.spawn_articulated(urdf, Springs.of(build_model(spec), spec), spec.friction,
                                self.domain.object_rgba(spec.color), placement)
        else:
            w.spawn_rigid(spec.shape, list(spec.size), spec.mass, spec.friction,
                          self.domain.object_rgba(spec.color), placement,
                          mesh_path=spec.asset_path if spec.shape == "mesh" else None,
                          urdf=spec.asset if spec.shape == "urdf" else None, scale=spec.scale)
        w.object_color = spec.color
        self.object = spec
        if settle:
            for _ in range(round(SETTLE_S / self.clock.period)):
                self.clock.advance()
        self.camera.apply_domain(self.domain)
        self.camera.restart_stream()
        return w.object_pose()
