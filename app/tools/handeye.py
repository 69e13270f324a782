"""``python -m app calibrate hand-eye``: solve the camera mount from views of a ChArUco board.

The arm visits ``n`` poses above a printed ChArUco board lying still on the table (through the
safety envelope); at each, the camera's frame is searched for the board (OpenCV ``aruco``:
``CharucoDetector``), the board's pose in the camera comes from ``solvePnP``, and the gripper's
pose in the base from the arm. OpenCV's ``calibrateHandEye`` (or, where the installed OpenCV
does not bind it, the same Park-Martin method here) then solves the camera optical frame in the
gripper frame (the ``camera.mount`` of ``config/hardware.yaml``). The result comes
with its residuals (how far the board's pose in the base, seen from each view through the
solved mount, spreads) and its change from the configured mount.

The frames must be the colour images the models see, at full resolution: the command opens
the camera with ``resolution`` 480 (the square crop without resizing). On the real robot the
board is printed from :meth:`BoardSpec.image` at 1 px = 0.5 mm (check the square size with a
ruler and pass it); in the simulator the same image is a texture on a thin plate on the table
(:func:`place_sim_board`), and a session whose camera is mounted elsewhere than the file says
stands for a wrong file.
"""

from __future__ import annotations

import argparse
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import yaml

from app.errors import HardwareError
from app.hardware_config import HardwareConfig
from app.outputs import atomic_write_text, check_output_file, write_guard
from app.robot.interfaces import Frame, MotionStatus, Robot
from app.robot.safety import SafeArm, SafetyLimits
from app.transforms import Pose, rot_x, rot_y, rot_z

CALIBRATION_RESOLUTION = 480  # px: the square crop of a 640x480 stream, not resized
MIN_CORNERS = 8  # ChArUco corners a view needs for a pose (PnP on fewer is fragile)
MIN_VIEWS = 5  # views the solve needs (calibrateHandEye needs >= 3 with distinct rotations)
SETTLE_FRAMES = 3  # frames to let pass after a move (the camera may deliver an older frame)
MOVE_TIMEOUT_S = 15.0  # s of clock time per move
HEIGHTS = (0.28, 0.40)  # m, camera above the board
SHIFT = 0.03  # m, largest horizontal offset of the camera from the board centre
TILT = np.radians(12.0)  # rad, largest roll/pitch of the view (rotations about several axes)
YAW = np.radians(35.0)  # rad, largest yaw of the view
BOARD_THICKNESS = 0.002  # m, of the simulated plate (a print on card)


@dataclass(frozen=True)
class BoardSpec:
    """A ChArUco board: ``squares`` (x, y), square and marker side in metres, dictionary."""

    squares: tuple[int, int] = (9, 7)
    square: float = 0.035  # m
    marker: float = 0.026  # m
    dictionary: str = "DICT_5X5_100"

    def board(self) -> Any:
        """The OpenCV ``CharucoBoard``."""
        d = cv2.aruco.getPredefinedDictionary(getattr(cv2.aruco, self.dictionary))
        return cv2.aruco.CharucoBoard(self.squares, self.square, self.marker, d)

    @property
    def size(self) -> tuple[float, float]:
        """Board width and height in metres."""
        return self.squares[0] * self.square, self.squares[1] * self.square

    def image(self, px_per_m: float = 2000.0) -> np.ndarray:
        """The board as a grey uint8 image (no margin), ``px_per_m`` pixels per metre."""
        w, h = self.size
        return self.board().generateImage((round(w * px_per_m), round(h * px_per_m)), marginSize=0)


@dataclass
class HandEyeResult:
    """The solved mount and how well it explains the views.

    Attributes:
        mount: Camera optical frame in the gripper frame.
        views: Views used (with the board found).
        residual_rms_mm: RMS distance (mm) of the board's position in the base, per view,
            from their mean (0 for a perfect mount and perfect detections).
        residual_max_mm: Largest such distance (mm).
        residual_max_deg: Largest angle (deg) between one view's board orientation and the
            first view's.
        change_mm: Distance (mm) from the configured mount.
        change_deg: Angle (deg) from the configured mount.
    """

    mount: Pose
    views: int
    residual_rms_mm: float
    residual_max_mm: float
    residual_max_deg: float
    change_mm: float
    change_deg: float

    def rpy_deg(self) -> list[float]:
        """Roll, pitch, yaw (deg) of the mount in hardware.yaml's convention (Rz Ry Rx)."""
        r = self.mount.matrix
        pitch = float(np.arcsin(-np.clip(r[2, 0], -1.0, 1.0)))
        return [float(np.degrees(np.arctan2(r[2, 1], r[2, 2]))), float(np.degrees(pitch)),
                float(np.degrees(np.arctan2(r[1, 0], r[0, 0])))]

    def as_dict(self) -> dict[str, Any]:
        """The result as written to the output file."""
        return {"mount": {"xyz": [round(float(v), 5) for v in self.mount.position],
                          "rpy": [round(v, 3) for v in self.rpy_deg()]},
                "views": self.views,
                "residuals": {"rms_mm": round(self.residual_rms_mm, 3),
                              "max_mm": round(self.residual_max_mm, 3),
                              "max_deg": round(self.residual_max_deg, 3)},
                "change_from_config": {"mm": round(self.change_mm, 2),
                                       "deg": round(self.change_deg, 3)}}


def board_pose_in_camera(frame: Frame, spec: BoardSpec) -> Pose | None:
    """The board's pose in the camera optical frame, or None when too few corners show.

    The board frame is OpenCV's: origin at a board corner, x along the squares' rows, z out of
    the board's face.
    """
    board = spec.board()
    gray = cv2.cvtColor(frame.rgb, cv2.COLOR_RGB2GRAY)
    corners, ids, _, _ = cv2.aruco.CharucoDetector(board).detectBoard(gray)
    if corners is None or ids is None or len(corners) < MIN_CORNERS:
        return None
    obj, img = board.matchImagePoints(corners, ids)
    k = frame.intrinsics
    camera = np.array([[k.fx, 0.0, k.cx], [0.0, k.fy, k.cy], [0.0, 0.0, 1.0]])
    ok, rvec, tvec = cv2.solvePnP(obj, img, camera, np.zeros(5))
    if not ok:
        return None
    return Pose(tvec.reshape(3), cv2.Rodrigues(rvec)[0])


def calibration_poses(board_centre: np.ndarray, mount: Pose, n: int, seed: int) -> list[Pose]:
    """Gripper poses (base frame) that put the camera above ``board_centre`` looking down.

    Heights, offsets, tilts and yaws are drawn from ``seed`` within :data:`HEIGHTS`,
    :data:`SHIFT`, :data:`TILT` and :data:`YAW`; the camera is placed through ``mount`` (the
    configured one: a few millimetres off only shifts the view).
    """
    rng = np.random.default_rng(seed)
    poses = []
    for _ in range(n):
        h = rng.uniform(*HEIGHTS)
        dx, dy = rng.uniform(-SHIFT, SHIFT, 2)
        rx, ry = rng.uniform(-TILT, TILT, 2)
        yaw = rng.uniform(-YAW, YAW)
        camera = Pose(board_centre + np.array([dx, dy, h]),
                      rot_z(yaw) @ rot_x(np.pi) @ rot_x(rx) @ rot_y(ry))  # optical z down, tilted
        poses.append(camera @ mount.inverse())
    return poses


def _move(robot: Robot, arm: Any, target: Pose) -> str:
    """Move and wait; the failure ("" when reached)."""
    arm.move_to(target)
    deadline = robot.clock.now() + MOVE_TIMEOUT_S
    while arm.motion_status() == MotionStatus.MOVING:
        if robot.clock.now() >= deadline:
            arm.stop()
            return f"the move did not end within {MOVE_TIMEOUT_S:g} s"
        robot.clock.advance()
    return arm.motion_error() if arm.motion_status() == MotionStatus.FAILED else ""


def park_martin(gripper_poses: list[Pose], board_poses: list[Pose]) -> Pose:
    """Hand-eye solve of Park and Martin (1994), closed form, over every pair of views.

    With ``G`` the gripper in the base and ``C`` the board in the camera, the board stays put:
    ``G_i X C_i = G_j X C_j``, so ``A X = X B`` with ``A = G_j^-1 G_i`` and ``B = C_j C_i^-1``.
    The rotation of ``X`` maps the rotation vectors of the ``B`` onto those of the ``A`` (least
    squares, by SVD); its translation solves ``(R_A - I) t = R_X t_B - t_A`` (least squares).

    Returns:
        ``X``: the camera in the gripper frame.
    """
    pairs = [(i, j) for i in range(len(gripper_poses)) for j in range(i + 1, len(gripper_poses))]
    motions = [(gripper_poses[j].inverse() @ gripper_poses[i], board_poses[j] @ board_poses[i].inverse())
               for i, j in pairs]
    alpha = np.array([cv2.Rodrigues(a.matrix)[0].ravel() for a, _ in motions])
    beta = np.array([cv2.Rodrigues(b.matrix)[0].ravel() for _, b in motions])
    u, _, vt = np.linalg.svd(beta.T @ alpha)
    fix = np.diag([1.0, 1.0, float(np.sign(np.linalg.det(vt.T @ u.T)))])  # a rotation, not a mirror
    rotation = vt.T @ fix @ u.T
    lhs = np.concatenate([a.matrix - np.eye(3) for a, _ in motions])
    rhs = np.concatenate([rotation @ b.position - a.position for a, b in motions])
    translation = np.linalg.lstsq(lhs, rhs, rcond=None)[0]
    return Pose(translation, rotation)


def solve(gripper_poses: list[Pose], board_poses: list[Pose]) -> tuple[Pose, list[Pose]]:
    """The hand-eye solve and the board's pose in the base per view.

    OpenCV's ``calibrateHandEye`` (Park's method) where the installed OpenCV binds it; 5.0.0
    does not (opencv issue 29565, fixed after that release), and then the same method in
    :func:`park_martin`.

    Args:
        gripper_poses: Gripper in the base frame, per view.
        board_poses: Board in the camera frame, per view.

    Returns:
        The camera in the gripper frame, and the board in the base frame seen from each view
        through it.
    """
    opencv = getattr(cv2, "calibrateHandEye", None)
    if opencv is not None:
        r, t = opencv([g.matrix for g in gripper_poses], [g.position for g in gripper_poses],
                      [b.matrix for b in board_poses], [b.position for b in board_poses],
                      method=cv2.CALIB_HAND_EYE_PARK)
        mount = Pose(np.asarray(t, dtype=float).reshape(3), np.asarray(r, dtype=float))
    else:
        mount = park_martin(gripper_poses, board_poses)
    return mount, [g @ mount @ b for g, b in zip(gripper_poses, board_poses, strict=True)]


def calibrate_hand_eye(robot: Robot, hw: HardwareConfig, limits: SafetyLimits,
                       board_centre: np.ndarray, n: int = 12, seed: int = 0,
                       spec: BoardSpec = BoardSpec()) -> HandEyeResult:
    """Visit ``n`` views of the board, then solve the mount.

    Args:
        robot: The robot (arm moves through the safety envelope; frames at full resolution).
        hw: The configured hardware (its mount places the views and is the "change" reference).
        limits: The safety envelope.
        board_centre: Where the board lies (base frame, m): roughly, to aim the views.
        n: Views to visit.
        seed: Seed of the view draws.
        spec: The board.

    Raises:
        HardwareError: Fewer than :data:`MIN_VIEWS` views found the board, or the arm could not
            return to the start pose.
    """
    arm = SafeArm(robot.arm, limits, robot.clock.period)
    grippers, boards, missed = [], [], []
    for i, target in enumerate(calibration_poses(np.asarray(board_centre, float), hw.mount, n, seed)):
        error = _move(robot, arm, target)
        if error:
            missed.append(f"view {i}: {error}")
            arm.recover()
            continue
        for _ in range(SETTLE_FRAMES):
            robot.clock.advance()
        seen = board_pose_in_camera(robot.camera.get_frame(), spec)
        if seen is None:
            missed.append(f"view {i}: fewer than {MIN_CORNERS} board corners")
            continue
        grippers.append(arm.pose())
        boards.append(seen)
    error = _move(robot, arm, hw.start_pose())
    if len(grippers) < MIN_VIEWS:
        raise HardwareError(f"hand-eye calibration: the board was found in {len(grippers)} of {n} "
                            f"views, {MIN_VIEWS} needed ({'; '.join(missed[:3])})")
    if error:
        raise HardwareError(f"hand-eye calibration: cannot return to the start pose: {error}")
    mount, in_base = solve(grippers, boards)
    positions = np.array([b.position for b in in_base])
    spread = np.linalg.norm(positions - positions.mean(axis=0), axis=1)
    angles = [in_base[0].distance(b)[1] for b in in_base]
    d, r = mount.distance(hw.mount)
    return HandEyeResult(mount, len(grippers), float(np.sqrt(np.mean(spread ** 2)) * 1000),
                         float(spread.max() * 1000), float(np.degrees(max(angles))), d * 1000,
                         float(np.degrees(r)))


def board_mesh(path: Path, spec: BoardSpec, thickness: float = BOARD_THICKNESS) -> Path:
    """A thin plate (.obj) the size of the board whose top face maps the whole texture."""
    x, y = spec.size[0] / 2, spec.size[1] / 2
    corners = [(-x, -y, 0.0), (x, -y, 0.0), (x, y, 0.0), (-x, y, 0.0),
               (-x, -y, thickness), (x, -y, thickness), (x, y, thickness), (-x, y, thickness)]
    lines = [f"v {a} {b} {c}" for a, b, c in corners]
    lines += ["vt 0 0", "vt 1 0", "vt 1 1", "vt 0 1", "vn 0 0 1", "vn 0 0 -1"]
    lines += ["f 5/1/1 6/2/1 7/3/1", "f 5/1/1 7/3/1 8/4/1",  # top: the board
              "f 1/1/2 3/1/2 2/1/2", "f 1/1/2 4/1/2 3/1/2"]  # bottom
    path.write_text("\n".join(lines) + "\n")
    return path


def place_sim_board(session: Any, centre: np.ndarray, spec: BoardSpec = BoardSpec()) -> None:
    """Lay the board flat on the simulator's table at ``centre`` (x, y in m), as its object."""
    tmp = Path(tempfile.mkdtemp(prefix="charuco_"))
    mesh = board_mesh(tmp / "board.obj", spec)
    world = session.world
    world.spawn_rigid("mesh", [*spec.size, BOARD_THICKNESS], 0.0, 1.0, (1.0, 1.0, 1.0, 1.0),
                      Pose(np.array([centre[0], centre[1], 0.0]), np.eye(3)), mesh_path=str(mesh))
    grey = spec.image()
    world.set_object_look((1.0, 1.0, 1.0, 1.0), world.texture("charuco", np.repeat(grey[:, :, None], 3, 2)))


def run_hand_eye(args: argparse.Namespace, hw: HardwareConfig) -> int:
    """``python -m app calibrate hand-eye``: print (and with ``--out`` write) the solved mount."""
    from app.robot.safety import load_safety

    if args.out:  # before any work (the arm moves): one line and exit 2
        check_output_file(args.out, "--out")
    limits = load_safety()
    full = replace(hw, resolution=CALIBRATION_RESOLUTION)
    # Under the camera at the start pose, on the table (board top 2 mm up).
    centre = np.array([*(hw.start_pose() @ hw.mount).position[:2], BOARD_THICKNESS])
    if args.backend == "real":
        from app.hardware.real_session import RealSession
        from app.lifecycle import RobotSession

        with RobotSession(lambda: RealSession(full, args.robot_host, limits=limits).robot,
                          hw.start_pose(), limits=limits, home_joints=hw.home_joints,
                          place_height=hw.place_height) as session:
            robot = session.start()
            session.home()
            result = calibrate_hand_eye(robot, hw, limits, centre, args.poses, args.seed)
    else:
        from app.sim.session import SimSession

        with SimSession(full, domain=args.domain, seed=args.seed) as s:
            place_sim_board(s, centre)
            s.arm.teleport(hw.start_pose())
            result = calibrate_hand_eye(s.robot, hw, limits, centre, args.poses, args.seed)
    out = result.as_dict()
    print(yaml.safe_dump(out, sort_keys=False).rstrip())
    if args.out:
        with write_guard(Path(args.out).parent):
            Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(args.out, yaml.safe_dump(out, sort_keys=False))
        print(f"written to {args.out}: copy mount into {hw.source} (camera.mount)")
    return 0
