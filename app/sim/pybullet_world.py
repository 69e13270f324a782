"""The PyBullet world: table, Panda arm with its hand, one object, wrist-camera rendering.

This is the only module that imports ``pybullet``. It speaks in robot terms (joint targets,
link poses, renders, contacts); the backends in :mod:`app.sim.backends` build the ``Camera`` /
``Arm`` / ``Gripper`` interfaces on top of it and :mod:`app.sim.truth` the evaluation accessor.

Geometry (base frame, z up, table surface at z = 0, metres): the Panda base stands at the
origin; the grasp point (link ``panda_grasptarget``) sits 0.105 m beyond the hand flange.
The arm links behind the wrist camera are not drawn (they can never enter its view, and drawing
their meshes was ~90 % of the render time); the hand and the fingers are drawn and segmented.
"""

from __future__ import annotations

import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from app.errors import MotionError, SimulationError
from app.robot.interfaces import Intrinsics
from app.sim.compliant import MAX_LINK_SPEED, Springs, instability, unit_sphere_obj
from app.transforms import Pose


def _import_pybullet_quietly():  # type: ignore[no-untyped-def]
    """Import pybullet without its C-level "pybullet build time" banner on stdout/stderr."""
    saved = [os.dup(1), os.dup(2)]
    null = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(null, 1)
        os.dup2(null, 2)
        import pybullet
        import pybullet_data
    finally:
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        for fd in (*saved, null):
            os.close(fd)
    return pybullet, pybullet_data


p, pybullet_data = _import_pybullet_quietly()


TIME_STEP = 1.0 / 240.0  # s; exactly 1/240 keeps PyBullet soft bodies stable (FACTS.md)
ARM_JOINTS = list(range(7))  # revolute joints panda_joint1..7
FINGER_JOINTS = (9, 10)  # prismatic finger joints, 0..0.04 m each
HAND_LINK = 8
GRASP_LINK = 11  # panda_grasptarget, 0.105 m beyond the hand
GRIPPER_LINKS = (HAND_LINK, 9, 10)  # drawn and labelled "gripper" in masks
ARM_FORCE = 240.0  # N·m, joint motor force limit (about the Panda's 87 N·m peak x margin for PD)
POSITION_GAIN = 1.0  # PyBullet position-control gain: tight tracking of the IK reference (lag < 1 mm at 4 cm/s)
# Panda rest posture (rad) used as the IK null-space bias: elbow up, wrist pointing down.
REST_POSE = [0.0, -0.3, 0.0, -2.2, 0.0, 2.0, 0.785]
# Rotation from the gripper frame (x finger line) to the hand link frame (fingers move along y).
HAND_FROM_GRIPPER = np.array([[0.0, -1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])
# Links never drawn whose shadows are rendered with their coarse collision meshes (app/sim/speed.py).
COARSE_SHADOW_LINKS = tuple(f"panda_link{i}" for i in range(6))
# Rolling friction of a compliant object's links (PyBullet's rolling-resistance coefficient, m:
# the resisting torque per newton of normal force). With the rigid objects' 0.0001 the
# articulated banana and sausage rolled away on a flat table by themselves (banana: median 5 cm
# in 5 s, 10 of 12 placements): the bent chain rocks on its springs and every rock rolls it on.
# 0.001 and 0.01 only slowed it (sausage: up to 2 and 0.8 cm in 5 s), 10x or 30x the joint
# damping did not stop it; 0.02 does (16 placements each: no link moves more than 1.2 mm,
# tests/test_compliant.py). Soft food flattens where it touches the table and does not roll freely.
COMPLIANT_ROLLING_FRICTION = 0.02
IK_POS_TOL = 0.005  # m, an IK solution farther than this from the target is "unreachable"
IK_ROT_TOL = np.radians(3.0)  # rad, same for orientation

SEG_BACKGROUND, SEG_OBJECT, SEG_GRIPPER = 0, 1, 2


@dataclass
class RenderSettings:
    """TinyRenderer lighting for one appearance domain (see ``config/domains``)."""

    light_direction: tuple[float, float, float] = (0.0, 0.0, 1.0)
    light_color: tuple[float, float, float] = (1.0, 1.0, 1.0)
    ambient: float = 1.0
    diffuse: float = 0.0
    specular: float = 0.0
    shadows: bool = False


@dataclass
class RawRender:
    """One rendered view before any sensor model.

    Attributes:
        rgb: (H, W, 3) uint8.
        depth: (H, W) float32 exact depth along the optical axis, metres.
        mask: (H, W) uint8 classes: 0 background, 1 object, 2 gripper.
    """

    rgb: np.ndarray
    depth: np.ndarray
    mask: np.ndarray


def gl_view_projection(camera_pose: Pose, k: Intrinsics, near: float, far: float) -> tuple[list[float], list[float]]:
    """OpenGL view and projection matrices (column-major lists) for an OpenCV-style camera.

    Args:
        camera_pose: Optical frame in the base frame (z forward, x right, y down in the image).
        k: Pinhole intrinsics in pixels.
        near: Near clipping distance (m).
        far: Far clipping distance (m).
    """
    gl_cam = camera_pose.homogeneous @ np.diag([1.0, -1.0, -1.0, 1.0])  # GL looks along -z, y up
    view = np.linalg.inv(gl_cam)
    w, h = k.width, k.height
    proj = np.array([
        [2 * k.fx / w, 0.0, 1 - 2 * (k.cx + 0.5) / w, 0.0],
        [0.0, 2 * k.fy / h, 2 * (k.cy + 0.5) / h - 1, 0.0],
        [0.0, 0.0, -(far + near) / (far - near), -2 * far * near / (far - near)],
        [0.0, 0.0, -1.0, 0.0],
    ])
    return view.T.reshape(-1).tolist(), proj.T.reshape(-1).tolist()


class PyBulletWorld:
    """A PyBullet DIRECT-mode world with a table, the Panda and at most one object.

    Args:
        deformable: Create a deformable-capable world (needed for soft objects; slower).
    """

    def __init__(self, deformable: bool = False) -> None:
        self.client = p.connect(p.DIRECT)
        self.deformable = deformable
        self._tmp = tempfile.TemporaryDirectory(prefix="simgrasp_")
        self.object_id: int | None = None
        self.object_is_soft = False
        self.springs: Springs | None = None  # joint springs of a compliant (articulated) object
        self.object_links: list[int] = [-1]  # link indices of the object (more for articulated ones)
        self.object_color: tuple[float, float, float] | None = None  # sim-domain RGB of the object
        # Further objects of a multi-object scene (app/sim/scene.py): body id -> sim-domain RGB.
        self.extra_objects: dict[int, tuple[float, float, float]] = {}
        self.fixtures: list[int] = []  # static scene furniture (the clearing bin's walls)
        self._textures: dict[str, int] = {}
        self.sim_time = 0.0
        self._build()

    # ------------------------------------------------------------------ world
    def _build(self) -> None:
        c = self.client
        if self.deformable:
            p.resetSimulation(p.RESET_USE_DEFORMABLE_WORLD, physicsClientId=c)
        else:
            p.resetSimulation(physicsClientId=c)
        p.setAdditionalSearchPath(pybullet_data.getDataPath(), physicsClientId=c)
        p.setGravity(0, 0, -9.81, physicsClientId=c)
        p.setTimeStep(TIME_STEP, physicsClientId=c)
        # The table: a collision box whose top face is z = 0, drawn as a tessellated textured
        # quad on that face. (A body without a visual shape is drawn by TinyRenderer with its
        # collision shape, which z-fought with a separate visual quad.)
        col = p.createCollisionShape(p.GEOM_BOX, halfExtents=[0.6, 0.6, 0.02], physicsClientId=c)
        vis = p.createVisualShape(p.GEOM_MESH, fileName=self._table_quad_mesh(), visualFramePosition=[0, 0, 0.02],
                                  physicsClientId=c)
        self.table_id = p.createMultiBody(0, col, vis, [0.5, 0.0, -0.02], physicsClientId=c)
        self.table_z = 0.0  # m, height of the table surface (the physical gap may move it)
        p.changeDynamics(self.table_id, -1, lateralFriction=0.8, physicsClientId=c)
        self.robot_id = p.loadURDF(self._panda_urdf(), [0, 0, 0], useFixedBase=True,
                                   flags=p.URDF_USE_SELF_COLLISION_EXCLUDE_PARENT, physicsClientId=c)
        for link in range(-1, HAND_LINK):  # links behind the wrist camera are never in view
            p.changeVisualShape(self.robot_id, link, rgbaColor=[0, 0, 0, 0], physicsClientId=c)
        for j in FINGER_JOINTS:
            p.changeDynamics(self.robot_id, j, lateralFriction=1.0, spinningFriction=0.01,
                             frictionAnchor=True, physicsClientId=c)  # FACTS.md: grasps that hold
        info = [p.getJointInfo(self.robot_id, j, physicsClientId=c) for j in ARM_JOINTS]
        self.lower = np.array([i[8] for i in info])
        self.upper = np.array([i[9] for i in info])
        self.reset_arm(REST_POSE, finger_width=0.08)

    @property
    def temp_dir(self) -> str:
        """This world's temporary folder (generated meshes and URDFs), deleted by :meth:`close`."""
        return self._tmp.name

    def close(self) -> None:
        """Disconnect and delete temporary files."""
        if p.isConnected(self.client):
            p.disconnect(self.client)
        self._tmp.cleanup()

    def step(self, n: int = 1) -> None:
        """Advance physics by ``n`` fixed steps of :data:`TIME_STEP`."""
        for _ in range(n):
            if self.springs is not None:
                self._apply_springs()
            p.stepSimulation(physicsClientId=self.client)
        self.sim_time += n * TIME_STEP
        if self.object_is_soft:
            self.check_soft_body()

    # ------------------------------------------------------------------ arm
    def joint_positions(self) -> np.ndarray:
        """Arm joint angles (7,), rad."""
        states = p.getJointStates(self.robot_id, ARM_JOINTS, physicsClientId=self.client)
        return np.array([s[0] for s in states])

    def reset_arm(self, joints: list[float] | np.ndarray, finger_width: float | None = None) -> None:
        """Teleport the arm (and fingers) to joint angles; motors hold them there."""
        for j, q in zip(ARM_JOINTS, joints, strict=True):
            p.resetJointState(self.robot_id, j, float(q), physicsClientId=self.client)
        self.set_joint_targets(np.asarray(joints))
        if finger_width is not None:
            for j in FINGER_JOINTS:
                p.resetJointState(self.robot_id, j, finger_width / 2, physicsClientId=self.client)
            self.set_finger_target(finger_width, force=40.0)

    def set_joint_targets(self, joints: np.ndarray) -> None:
        """Joint position control targets for the 7 arm joints (rad)."""
        p.setJointMotorControlArray(self.robot_id, ARM_JOINTS, p.POSITION_CONTROL,
                                    targetPositions=list(map(float, joints)),
                                    forces=[ARM_FORCE] * 7, positionGains=[POSITION_GAIN] * 7,
                                    physicsClientId=self.client)

    def link_pose(self, link: int) -> Pose:
        """World pose of a link frame (forward kinematics of the current joint state)."""
        s = p.getLinkState(self.robot_id, link, computeForwardKinematics=True, physicsClientId=self.client)
        return Pose.from_quat(np.array(s[4]), np.array(s[5]))

    def gripper_pose(self) -> Pose:
        """Gripper frame (x finger line, z approach) at the grasp point, in the base frame."""
        hand = self.link_pose(GRASP_LINK)
        return Pose(hand.position, hand.matrix @ HAND_FROM_GRIPPER)

    def forward_kinematics(self, joints: np.ndarray) -> Pose:
        """Gripper pose (base frame) at arm joint angles ``joints`` (7,) rad; the arm's state is
        left as it was."""
        c = self.client
        states = p.getJointStates(self.robot_id, ARM_JOINTS, physicsClientId=c)
        for j, a in zip(ARM_JOINTS, joints, strict=True):
            p.resetJointState(self.robot_id, j, float(a), physicsClientId=c)
        pose = self.gripper_pose()
        for j, s in zip(ARM_JOINTS, states, strict=True):
            p.resetJointState(self.robot_id, j, float(s[0]), targetVelocity=s[1], physicsClientId=c)
        return pose

    def solve_ik(self, target: Pose) -> np.ndarray:
        """Joint angles (7,) that put the gripper frame at ``target``, within joint limits.

        Raises:
            MotionError: If no solution within :data:`IK_POS_TOL` / :data:`IK_ROT_TOL` exists.
        """
        if not target.is_finite():
            raise MotionError("unreachable target: pose is not finite")
        hand_orn = Pose(target.position, target.matrix @ HAND_FROM_GRIPPER.T).quat
        saved = self.joint_positions()
        c = self.client
        q = saved
        for _ in range(3):  # re-seed from the previous solution: a few rounds converge tightly
            sol = p.calculateInverseKinematics(
                self.robot_id, GRASP_LINK, target.position.tolist(), hand_orn.tolist(),
                lowerLimits=self.lower.tolist(), upperLimits=self.upper.tolist(),
                jointRanges=(self.upper - self.lower).tolist(), restPoses=list(map(float, q)),
                maxNumIterations=100, residualThreshold=1e-5, physicsClientId=c)
            q = np.clip(np.array(sol[:7]), self.lower, self.upper)
            for j, a in zip(ARM_JOINTS, q, strict=True):
                p.resetJointState(self.robot_id, j, float(a), physicsClientId=c)
            d, r = self.gripper_pose().distance(target)
            if d < IK_POS_TOL / 5 and r < IK_ROT_TOL / 5:
                break
        velocities = [s[1] for s in p.getJointStates(self.robot_id, ARM_JOINTS, physicsClientId=c)]
        for j, a, v in zip(ARM_JOINTS, saved, velocities, strict=True):
            p.resetJointState(self.robot_id, j, float(a), targetVelocity=v, physicsClientId=c)
        if d > IK_POS_TOL or r > IK_ROT_TOL:
            x, y, z = target.position
            raise MotionError(
                f"unreachable target ({x:.3f}, {y:.3f}, {z:.3f}) m: best IK solution within joint "
                f"limits is {d * 100:.1f} cm / {np.degrees(r):.1f} deg away")
        return q

    # ------------------------------------------------------------------ fingers
    def finger_width(self) -> float:
        """Opening between the fingers (m)."""
        states = p.getJointStates(self.robot_id, FINGER_JOINTS, physicsClientId=self.client)
        return float(states[0][0] + states[1][0])

    def finger_speed(self) -> float:
        """Largest finger joint speed (m/s)."""
        states = p.getJointStates(self.robot_id, FINGER_JOINTS, physicsClientId=self.client)
        return float(max(abs(states[0][1]), abs(states[1][1])))

    def set_finger_target(self, width: float, force: float) -> None:
        """Drive both fingers towards a total opening ``width`` (m) with ``force`` (N) each."""
        half = float(np.clip(width / 2, 0.0, 0.04))
        p.setJointMotorControlArray(self.robot_id, list(FINGER_JOINTS), p.POSITION_CONTROL,
                                    targetPositions=[half, half], forces=[force, force],
                                    positionGains=[0.05, 0.05], physicsClientId=self.client)

    def finger_contacts(self, body: int) -> tuple[bool, bool]:
        """Whether each finger (left, right) touches ``body``."""
        return tuple(bool(p.getContactPoints(self.robot_id, body, linkIndexA=j, physicsClientId=self.client))
                     for j in FINGER_JOINTS)  # type: ignore[return-value]

    def gripper_min_z(self) -> float:
        """Lowest point of the hand and fingers (m above the table), from their AABBs."""
        return float(min(p.getAABB(self.robot_id, link, physicsClientId=self.client)[0][2]
                         for link in GRIPPER_LINKS))

    def finger_lowest_point(self) -> float:
        """Height (m) of the lowest vertex of the two fingers' collision meshes, in the world.

        Read from the URDF's own finger geometry (mesh file, scale and collision frame of each
        finger link), independently of ``config/hardware.yaml``'s fingertip numbers.
        """
        c, low = self.client, np.inf
        for link in FINGER_JOINTS:
            for shape in p.getCollisionShapeData(self.robot_id, link, physicsClientId=c):
                verts = self._mesh_vertices(shape[4].decode()) * np.asarray(shape[3])
                st = p.getLinkState(self.robot_id, link, computeForwardKinematics=True, physicsClientId=c)
                com = Pose.from_quat(np.array(st[0]), np.array(st[1]))  # link inertial frame: shape data's frame
                local = Pose.from_quat(np.array(shape[5]), np.array(shape[6]))
                world = (com @ local).apply(verts)
                low = min(low, float(world[:, 2].min()))
        return low

    def _mesh_vertices(self, path: str) -> np.ndarray:
        """Vertices (N, 3) of a Wavefront .obj file (cached)."""
        cache = self.__dict__.setdefault("_mesh_cache", {})
        if path not in cache:
            with open(path) as f:
                cache[path] = np.array([[float(x) for x in line.split()[1:4]] for line in f if line.startswith("v ")])
        return cache[path]

    def set_table_height(self, z: float) -> None:
        """Put the table surface at height ``z`` (m; 0 is where the configuration assumes it)."""
        if z != self.table_z:
            p.resetBasePositionAndOrientation(self.table_id, [0.5, 0.0, -0.02 + z], [0, 0, 0, 1],
                                              physicsClientId=self.client)
            self.table_z = z

    def table_contact_force(self) -> float:
        """Total normal force (N) between the hand or fingers and the table."""
        return float(sum(c[9] for c in p.getContactPoints(self.robot_id, self.table_id, physicsClientId=self.client)
                         if c[3] in GRIPPER_LINKS))

    def gripper_touches_table(self) -> bool:
        """Whether the hand or a finger is in contact with the table."""
        return bool(p.getContactPoints(self.robot_id, self.table_id, physicsClientId=self.client))

    # ------------------------------------------------------------------ objects
    def remove_object(self) -> None:
        """Remove the current object (and the further objects of a multi-object scene), if any."""
        for body in list(self.extra_objects):
            p.removeBody(body, physicsClientId=self.client)
        self.extra_objects.clear()
        if self.object_id is not None:
            p.removeBody(self.object_id, physicsClientId=self.client)
            self.object_id = None
            self.object_is_soft = False
            self.springs = None
            self.object_links = [-1]

    def spawn_rigid(self, shape: str, size: list[float], mass: float, friction: float,
                    rgba: tuple[float, float, float, float], pose: Pose,
                    mesh_path: str | None = None, urdf: str | None = None, scale: float = 1.0,
                    extra: bool = False) -> int:
        """Add a rigid object.

        Args:
            shape: ``box`` (size = full extents x, y, z), ``cylinder`` (radius, height),
                ``sphere`` (radius), ``capsule`` (radius, total length along x),
                ``ellipsoid`` (full extents, a scaled sphere mesh), ``mesh`` (a convex .obj,
                scaled by ``scale``) or ``urdf`` (a pybullet_data URDF, ``globalScaling=scale``).
            size: Shape parameters (m), as above.
            mass: kg. friction: lateral friction coefficient. rgba: colour in [0, 1].
            pose: Pose of the object frame in the base frame.
            extra: Add it beside the current object (a multi-object scene) instead of replacing it.
        """
        if not extra:
            self.remove_object()
        c = self.client
        pos, orn = pose.position.tolist(), pose.quat.tolist()
        if shape == "urdf":
            body = p.loadURDF(urdf, pos, orn, globalScaling=scale, physicsClientId=c)
            p.changeDynamics(body, -1, mass=mass, physicsClientId=c)
        else:
            if shape == "box":
                kw = {"shapeType": p.GEOM_BOX, "halfExtents": [s / 2 for s in size]}
                vkw = dict(kw)
            elif shape == "cylinder":
                kw = {"shapeType": p.GEOM_CYLINDER, "radius": size[0], "height": size[1]}
                vkw = {"shapeType": p.GEOM_CYLINDER, "radius": size[0], "length": size[1]}
            elif shape == "sphere":
                kw = {"shapeType": p.GEOM_SPHERE, "radius": size[0]}
                vkw = dict(kw)
            elif shape == "capsule":  # PyBullet capsules lie along z; we rotate them onto x
                kw = {"shapeType": p.GEOM_CAPSULE, "radius": size[0], "height": size[1] - 2 * size[0],
                      "collisionFrameOrientation": p.getQuaternionFromEuler([0, np.pi / 2, 0])}
                vkw = {"shapeType": p.GEOM_CAPSULE, "radius": size[0], "length": size[1] - 2 * size[0],
                       "visualFrameOrientation": p.getQuaternionFromEuler([0, np.pi / 2, 0])}
            elif shape in ("mesh", "ellipsoid"):
                path = mesh_path if shape == "mesh" else self._unit_sphere_mesh()
                mscale = [scale] * 3 if shape == "mesh" else [s / 2 for s in size]
                kw = {"shapeType": p.GEOM_MESH, "fileName": path, "meshScale": mscale}
                vkw = dict(kw)
            else:
                raise ValueError(f"unknown shape {shape!r}")
            col = p.createCollisionShape(physicsClientId=c, **kw)
            vis = p.createVisualShape(physicsClientId=c, **vkw)
            body = p.createMultiBody(mass, col, vis, pos, orn, physicsClientId=c)
        p.changeDynamics(body, -1, lateralFriction=friction, spinningFriction=0.001,
                         rollingFriction=0.0001, physicsClientId=c)
        if extra:  # its sim-domain colour is set by the caller (camera.apply_domain recolours it)
            self.extra_objects[body] = (1.0, 1.0, 1.0)
            self.set_body_look(body, rgba)
            return body
        self.object_id = body
        self.object_is_soft = False
        self.set_object_look(rgba, None)
        return body

    def spawn_articulated(self, urdf_path: str, springs: Springs, friction: float,
                          rgba: tuple[float, float, float, float], pose: Pose) -> int:
        """Add a compliant object: a generated multibody URDF (:mod:`app.sim.compliant`) whose
        joints are driven by ``springs`` before every physics step and checked for instability
        after it.

        Args:
            urdf_path: The generated URDF (its base link frame is the object frame).
            springs: Spring, damper and limits of each joint, in the URDF's joint order.
            friction: Lateral friction of every link. rgba: colour of every link.
            pose: Pose of the object frame in the base frame.
        """
        self.remove_object()
        c = self.client
        body = p.loadURDF(urdf_path, pose.position.tolist(), pose.quat.tolist(), physicsClientId=c)
        n = p.getNumJoints(body, physicsClientId=c)
        names = [p.getJointInfo(body, j, physicsClientId=c)[1].decode() for j in range(n)]
        try:
            springs = springs.reordered(names)  # PyBullet numbers the joints in its own order
        except Exception:
            p.removeBody(body, physicsClientId=c)
            raise
        self.object_links = [-1, *range(n)]
        for link in self.object_links:
            p.changeDynamics(body, link, lateralFriction=friction, spinningFriction=0.001,
                             rollingFriction=COMPLIANT_ROLLING_FRICTION,
                             linearDamping=0.0, angularDamping=0.0, physicsClientId=c)
        # Free the joints of PyBullet's default velocity motors: the springs alone hold them.
        p.setJointMotorControlArray(body, list(range(n)), p.VELOCITY_CONTROL, forces=[0.0] * n, physicsClientId=c)
        self.object_id = body
        self.object_is_soft = False
        self.springs = springs
        self.set_object_look(rgba, None)
        return body

    def object_joints(self) -> tuple[np.ndarray, np.ndarray]:
        """Joint positions and velocities of an articulated object (rad or m, per second)."""
        n = len(self.object_links) - 1
        states = p.getJointStates(self.object_id, list(range(n)), physicsClientId=self.client)
        return np.array([s[0] for s in states]), np.array([s[1] for s in states])

    def _apply_springs(self) -> None:
        """Check the last step for instability, then set this step's spring torques.

        Raises:
            SimulationError: The object is unstable (a named reason: diverged, energy growing,
                a segment flying off).
        """
        springs = self.springs
        assert springs is not None
        q, v = self.object_joints()
        why = instability(springs, q, v)
        if not why:
            states = p.getLinkStates(self.object_id, self.object_links[1:], computeLinkVelocity=1,
                                     physicsClientId=self.client)
            base, _ = p.getBaseVelocity(self.object_id, physicsClientId=self.client)
            speeds = [float(np.linalg.norm(base))] + [float(np.linalg.norm(s[6])) for s in states]
            fastest = int(np.argmax(speeds))
            if not np.isfinite(speeds[fastest]) or speeds[fastest] > MAX_LINK_SPEED:
                why = f"link {fastest - 1} moving at {speeds[fastest]:.1f} m/s (> {MAX_LINK_SPEED:g}): a segment flying off"
        if why:
            self.springs = None  # stop driving it; the episode ends on this error
            raise SimulationError(f"compliant object unstable at t = {self.sim_time:.2f} s: {why}")
        forces = springs.forces(q, v, TIME_STEP)
        p.setJointMotorControlArray(self.object_id, list(range(len(q))), p.TORQUE_CONTROL,
                                    forces=forces.tolist(), physicsClientId=self.client)

    def spawn_soft(self, vtk_path: str, mass: float, friction: float, mu: float, lam: float,
                   damping: float, rgba: tuple[float, float, float, float], pose: Pose) -> int:
        """Add a Neo-Hookean soft body from a tetrahedral ``.vtk`` mesh (deformable world only)."""
        if not self.deformable:
            raise SimulationError("soft objects need a world created with deformable=True")
        self.remove_object()
        body = p.loadSoftBody(vtk_path, basePosition=pose.position.tolist(),
                              baseOrientation=pose.quat.tolist(), mass=mass, useNeoHookean=1,
                              NeoHookeanMu=mu, NeoHookeanLambda=lam, NeoHookeanDamping=damping,
                              useSelfCollision=0, frictionCoeff=friction, collisionMargin=0.002,
                              physicsClientId=self.client)
        self.object_id = body
        self.object_is_soft = True
        self._rest_extent = self._soft_extent()
        self.set_object_look(rgba, None)
        return body

    def _soft_nodes(self) -> np.ndarray:
        mesh = p.getMeshData(self.object_id, -1, flags=p.MESH_DATA_SIMULATION_MESH, physicsClientId=self.client)
        return np.array(mesh[1])

    def _soft_extent(self) -> float:
        nodes = self._soft_nodes()
        return float(np.max(np.ptp(nodes, axis=0)))

    def check_soft_body(self) -> None:
        """Fail loudly if the soft body exploded (non-finite or grossly stretched nodes)."""
        nodes = self._soft_nodes()
        if not np.all(np.isfinite(nodes)) or float(np.max(np.ptp(nodes, axis=0))) > 3 * self._rest_extent:
            raise SimulationError("soft body exploded: node positions diverged (reduce stiffness or time step)")

    def _panda_urdf(self) -> str:
        """The Panda's URDF: pybullet_data's, or (lever ``lite_arm_shadows``, :mod:`app.sim.speed`)
        a copy whose upper-arm links (:data:`COARSE_SHADOW_LINKS`, never drawn) use their coarse
        collision meshes as visual meshes: only their shadows are rendered."""
        from app.sim.speed import current

        if not current().lite_arm_shadows:
            return "franka_panda/panda.urdf"
        root = Path(pybullet_data.getDataPath()) / "franka_panda"
        text = (root / "panda.urdf").read_text()

        def strip(m: re.Match[str]) -> str:
            block = m.group(0)
            if re.search(r'name="([^"]+)"', block).group(1) in COARSE_SHADOW_LINKS:
                return re.sub(r"<visual>.*?</visual>", lambda v: v.group(0).replace("meshes/visual/", "meshes/collision/"),
                              block, flags=re.S)
            return block

        text = re.sub(r"<link name=.*?</link>", strip, text, flags=re.S)
        path = Path(self._tmp.name) / "panda_lite.urdf"
        path.write_text(text.replace("package://meshes/", f"{root / 'meshes'}/"))
        return str(path)

    def _table_quad_mesh(self) -> str:
        """A 1.2 m square at z = 0 with UVs, tessellated into 5 cm cells.

        TinyRenderer drops large triangles that cross the near plane (a 2-triangle table
        vanished at some camera poses), so the table is a grid of small ones.
        """
        path = Path(self._tmp.name) / "table_grid.obj"
        n, half = 24, 0.6  # 24 x 24 cells of 5 cm
        lines = []
        for j in range(n + 1):
            for i in range(n + 1):
                lines.append(f"v {-half + 2 * half * i / n:.4f} {-half + 2 * half * j / n:.4f} 0")
                lines.append(f"vt {i / n:.5f} {j / n:.5f}")
        lines.append("vn 0 0 1")
        for j in range(n):
            for i in range(n):
                a = j * (n + 1) + i + 1
                b, c, d = a + 1, a + n + 2, a + n + 1
                lines.append(f"f {a}/{a}/1 {b}/{b}/1 {c}/{c}/1")
                lines.append(f"f {a}/{a}/1 {c}/{c}/1 {d}/{d}/1")
        path.write_text("\n".join(lines) + "\n")
        return str(path)

    def _unit_sphere_mesh(self) -> str:
        path = Path(self._tmp.name) / "unit_sphere.obj"
        if not path.exists():
            path.write_text(unit_sphere_obj())  # the same mesh the compliant pads' cores use
        return str(path)

    @property
    def object_ids(self) -> list[int]:
        """Every object body on the table: the first object, then the further ones."""
        return ([] if self.object_id is None else [self.object_id]) + list(self.extra_objects)

    def body_pose(self, body: int) -> Pose:
        """Ground-truth pose of a rigid body (base frame)."""
        pos, orn = p.getBasePositionAndOrientation(body, physicsClientId=self.client)
        return Pose.from_quat(np.array(pos), np.array(orn))

    def set_body_pose(self, body: int, pose: Pose) -> None:
        """Teleport a rigid body (scene set-up)."""
        p.resetBasePositionAndOrientation(body, pose.position.tolist(), pose.quat.tolist(),
                                          physicsClientId=self.client)

    def body_aabb(self, body: int) -> tuple[np.ndarray, np.ndarray]:
        """Axis-aligned bounding box (min, max) of a body in the base frame (m)."""
        lo, hi = p.getAABB(body, physicsClientId=self.client)
        return np.array(lo), np.array(hi)

    def bodies_distance(self, a: int, b: int, max_distance: float = 0.05) -> float:
        """Smallest distance (m) between two bodies' collision shapes (negative: penetration);
        ``max_distance`` when they are farther apart than that."""
        pts = p.getClosestPoints(a, b, max_distance, physicsClientId=self.client)
        return min((float(c[8]) for c in pts), default=max_distance)

    def add_bin(self, centre: tuple[float, float], inner: float, wall_height: float,
                wall_thickness: float = 0.01) -> None:
        """Four static walls on the table around a square of side ``inner`` (m) at ``centre``
        (x, y in the base frame), standing on the table where it is now (``set_table_height`` first):
        the clearing bin. Walls are table-coloured and not objects."""
        c = self.client
        half, t = inner / 2 + wall_thickness / 2, wall_thickness / 2
        for dx, dy, hx, hy in ((half, 0, t, half + t), (-half, 0, t, half + t),
                               (0, half, half + t, t), (0, -half, half + t, t)):
            col = p.createCollisionShape(p.GEOM_BOX, halfExtents=[hx, hy, wall_height / 2], physicsClientId=c)
            vis = p.createVisualShape(p.GEOM_BOX, halfExtents=[hx, hy, wall_height / 2],
                                      rgbaColor=[0.45, 0.45, 0.5, 1.0], physicsClientId=c)
            self.fixtures.append(p.createMultiBody(0, col, vis, [centre[0] + dx, centre[1] + dy, self.table_z + wall_height / 2],
                                                   physicsClientId=c))

    def object_pose(self) -> Pose:
        """Ground-truth object pose (base frame); the centroid of the nodes for soft bodies."""
        if self.object_id is None:
            raise SimulationError("no object in the world")
        if self.object_is_soft:
            nodes = self._soft_nodes()
            pos, orn = p.getBasePositionAndOrientation(self.object_id, physicsClientId=self.client)
            return Pose.from_quat(nodes.mean(axis=0), np.array(orn))
        pos, orn = p.getBasePositionAndOrientation(self.object_id, physicsClientId=self.client)
        return Pose.from_quat(np.array(pos), np.array(orn))

    def set_object_pose(self, pose: Pose) -> None:
        """Teleport the rigid object (for evaluation set-ups and fault injection)."""
        p.resetBasePositionAndOrientation(self.object_id, pose.position.tolist(), pose.quat.tolist(),
                                          physicsClientId=self.client)

    def object_aabb(self) -> tuple[np.ndarray, np.ndarray]:
        """Axis-aligned bounding box (min, max) of the object in the base frame."""
        boxes = [p.getAABB(self.object_id, link, physicsClientId=self.client) for link in self.object_links]
        return np.min([b[0] for b in boxes], axis=0), np.max([b[1] for b in boxes], axis=0)

    def object_dynamics(self) -> tuple[float, float]:
        """(mass kg, lateral friction) of the rigid object as simulated."""
        info = p.getDynamicsInfo(self.object_id, -1, physicsClientId=self.client)
        return float(info[0]), float(info[1])

    def object_speed(self) -> float:
        """Linear speed of the object (m/s)."""
        v, _ = p.getBaseVelocity(self.object_id, physicsClientId=self.client)
        return float(np.linalg.norm(v))

    def push_object(self, impulse: np.ndarray) -> None:
        """Apply an external force (N) for one step at the object's centre (fault injection)."""
        pos = self.object_pose().position
        p.applyExternalForce(self.object_id, -1, list(map(float, impulse)), pos.tolist(), p.WORLD_FRAME,
                             physicsClientId=self.client)

    # ------------------------------------------------------------------ looks
    def texture(self, key: str, image: np.ndarray) -> int:
        """Load (once) an RGB uint8 image as a texture and return its id."""
        if key not in self._textures:
            path = os.path.join(self._tmp.name, f"{key}.png")
            import cv2  # local: only needed when a domain uses textures

            cv2.imwrite(path, cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
            self._textures[key] = p.loadTexture(path, physicsClientId=self.client)
        return self._textures[key]

    def set_table_look(self, rgba: tuple[float, float, float, float], texture: int | None) -> None:
        """Table top colour ``rgba`` over ``texture`` (None: plain)."""
        if texture is None:  # TinyRenderer draws shapes with a checker texture unless given one
            texture = self.texture("plain_white", np.full((4, 4, 3), 255, np.uint8))
        p.changeVisualShape(self.table_id, -1, textureUniqueId=texture, rgbaColor=list(rgba),
                            physicsClientId=self.client)

    def set_object_look(self, rgba: tuple[float, float, float, float], texture: int | None) -> None:
        """Colour (and optionally texture) of the object."""
        if self.object_id is None:
            return
        kw = {"rgbaColor": list(rgba)}
        if texture is not None:
            kw["textureUniqueId"] = texture
        for link in self.object_links:
            p.changeVisualShape(self.object_id, link, physicsClientId=self.client, **kw)

    def set_body_look(self, body: int, rgba: tuple[float, float, float, float]) -> None:
        """Colour of one body (a further object of a multi-object scene)."""
        p.changeVisualShape(body, -1, rgbaColor=list(rgba), physicsClientId=self.client)

    def set_gripper_look(self, rgba: tuple[float, float, float, float]) -> None:
        """Colour of the hand and fingers."""
        for link in GRIPPER_LINKS:
            p.changeVisualShape(self.robot_id, link, rgbaColor=list(rgba), physicsClientId=self.client)

    def render(self, camera_pose: Pose, k: Intrinsics, settings: RenderSettings,
               near: float = 0.01, far: float = 3.0) -> RawRender:
        """Render RGB, exact depth and the class mask from ``camera_pose`` (TinyRenderer).

        Args:
            camera_pose: Optical frame in the base frame.
            k: Intrinsics (any principal point; square or not).
            settings: Lighting of the domain.
            near: Near clip (m); far: far clip (m).
        """
        view, proj = gl_view_projection(camera_pose, k, near, far)
        _, _, rgba, zbuf, seg = p.getCameraImage(
            k.width, k.height, view, proj, renderer=p.ER_TINY_RENDERER,
            shadow=int(settings.shadows), lightDirection=list(settings.light_direction),
            lightColor=list(settings.light_color), lightAmbientCoeff=settings.ambient,
            lightDiffuseCoeff=settings.diffuse, lightSpecularCoeff=settings.specular,
            flags=p.ER_SEGMENTATION_MASK_OBJECT_AND_LINKINDEX, physicsClientId=self.client)
        rgb = np.asarray(rgba, dtype=np.uint8).reshape(k.height, k.width, 4)[:, :, :3].copy()
        zb = np.asarray(zbuf, dtype=np.float64).reshape(k.height, k.width)
        depth = (far * near / (far - (far - near) * zb)).astype(np.float32)
        depth[zb >= 1.0] = 0.0  # nothing drawn: no reading
        seg = np.asarray(seg, dtype=np.int64).reshape(k.height, k.width)
        body = np.where(seg >= 0, seg & 0xFFFFFF, -1)
        link = np.where(seg >= 0, (seg >> 24) - 1, -2)
        mask = np.zeros((k.height, k.width), np.uint8)
        if self.object_id is not None:
            mask[np.isin(body, self.object_ids)] = SEG_OBJECT
        mask[(body == self.robot_id) & np.isin(link, GRIPPER_LINKS)] = SEG_GRIPPER
        return RawRender(rgb, depth, mask)
