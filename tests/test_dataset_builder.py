"""Real data collection (``python -m app dataset --backend real``) through the panda_py fake:
homed first, every move inside the safety envelope, stopped with a reason on a failed move; the
object found from depth in the start view (a librealsense ``software_device`` camera showing a
raised block), and the person asked to move it every N images."""

from __future__ import annotations

import argparse
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import numpy as np
import panda_py
import pytest

from app.controllers.locate import locate_object
from app.errors import ConfigError, HardwareError
from app.hardware.panda import hand_to_gripper
from app.hardware.real_session import RealSession
from app.hardware.realsense import RealSenseCamera
from app.hardware_config import HardwareConfig, load_hardware
from app.robot.interfaces import Frame, Intrinsics, Robot
from app.robot.safety import load_safety
from app.tools.dataset import run_dataset
from app.tools.dataset_builder import POSE_KINDS, sample_camera_delta
from app.tools.real_dataset import (
    DEFAULT_PROMPT_EVERY,
    CollectionStopped,
    StoppedByPerson,
    build_real_dataset,
)
from app.transforms import Pose, delta_pose
from models.dataset import read_index
from tests.fakes import FakePandaPy
from tests.fakes.fake_panda_py import START_Q
from tests.test_realsense import UNITS, PushingSource, SoftwareCamera

HOST = "172.16.0.2"
AWAY_Q = np.array([0.1, 0.15, -0.1, -0.3, 0.0, 0.45, 0.3])  # rad off the homing posture: ~20 cm low
BLOCK = (0.04, -0.03)  # m, (x, y) of the block's centre in the start gripper frame
MOVED = (-0.05, 0.06)  # m, where the person moves it to
BLOCK_SIDE = 0.05  # m, side of the block's square top
BLOCK_HEIGHT = 0.06  # m, its top above the table
OFFSET_TOLERANCE = 0.003  # m: under one pixel (4.3 mm at 0.54 m, 128 px) of centroid error


def scene_depth(k: Intrinsics, hw: HardwareConfig, blocks: Sequence[tuple[float, float]]) -> np.ndarray:
    """(H, W) depth (m, along the optical axis) seen from the start pose: the table, the square
    top of each block (centre (x, y) in the start gripper frame), and no reading on the
    fingertips in the top corners (nearer than the sensor's range)."""
    assert np.allclose(hw.mount.matrix, np.eye(3))  # the camera looks along the approach: straight down
    table = float((hw.start_pose() @ hw.mount).position[2])  # m, camera height above the table (0.6)
    top = table - BLOCK_HEIGHT
    v, u = np.mgrid[0:k.height, 0:k.width]
    x, y = k.normalise(u, v)
    depth = np.full(x.shape, table, np.float32)
    for bx, by in blocks:
        cx, cy, _ = hw.mount.inverse().apply(np.array([bx, by, 0.0]))  # block axis, camera frame (m)
        depth[(np.abs(x * top - cx) <= BLOCK_SIDE / 2) & (np.abs(y * top - cy) <= BLOCK_SIDE / 2)] = top
    depth[(y < -0.4) & (np.abs(x) > 0.3)] = 0.0  # normalised coords of the fingertips' corners
    return depth


class StubCamera:
    """Frames at the model resolution rendered with :func:`scene_depth` (one block at BLOCK)."""

    def __init__(self, hw: HardwareConfig) -> None:
        self._k: Intrinsics = hw.intrinsics
        self._depth = scene_depth(self._k, hw, [BLOCK])
        self.frames = 0

    @property
    def intrinsics(self) -> Intrinsics:
        return self._k

    def get_frame(self) -> Frame:
        self.frames += 1
        r = self._k.width
        return Frame(np.zeros((r, r, 3), np.uint8), self._depth.copy(), self._k, 0.0, self.frames)

    def close(self) -> None:
        pass


class SoftwareScene:
    """The start view through librealsense's ``software_device`` at the profile's native stream:
    the same frame pushed before every read, until :meth:`place` puts the blocks elsewhere."""

    def __init__(self, hw: HardwareConfig, blocks: Sequence[tuple[float, float]]) -> None:
        n = hw.native
        assert n.fx == n.fy  # SoftwareCamera streams have square pixels
        geometry = (n.width, n.height, n.fx, n.cx, n.cy)
        self.hw = hw
        self.source = PushingSource(None, None, SoftwareCamera(geometry, geometry))
        self.place(blocks)

    def place(self, blocks: Sequence[tuple[float, float]]) -> None:
        """Show ``blocks`` (centres in the start gripper frame, m) from the next frame on."""
        depth = scene_depth(self.hw.native, self.hw, blocks)
        self.source.depth = np.round(depth / UNITS).astype(np.uint16)  # raw z16 units
        rgb = np.full((*depth.shape, 3), 170, np.uint8)  # a grey table
        rgb[(depth > 0) & (depth < depth.max())] = (200, 40, 40)  # red blocks
        self.source.rgb = rgb

    def camera(self) -> RealSenseCamera:
        """A new camera on the device (a session closes its camera when it ends)."""
        return RealSenseCamera.from_source(self.source, self.hw)


@pytest.fixture(scope="module")
def hw() -> HardwareConfig:
    return load_hardware()


def _fake(**options: object) -> FakePandaPy:
    """A robot left where a previous run stopped: low, yawed (joints and pose consistent)."""
    q = START_Q + AWAY_Q
    return FakePandaPy(start_q=q, start_pose=panda_py.fk(q), fk=panda_py.fk, time_scale=0.03, **options)


def _args(out: Path, n: int, prompt_every: int = DEFAULT_PROMPT_EVERY, no_prompt: bool = False) -> argparse.Namespace:
    return argparse.Namespace(backend="real", n=n, seed=0, out=str(out), config=None, robot_host=HOST,
                              objects="seen", domain="real", prompt_every=prompt_every, no_prompt=no_prompt)


def _connect(hw: HardwareConfig, fake: FakePandaPy):  # noqa: ANN202 - a test helper
    return lambda: RealSession(hw, HOST, camera=StubCamera(hw), panda_module=fake).robot


@pytest.fixture
def scene(hw: HardwareConfig) -> Iterator[SoftwareScene]:
    """A software_device camera showing one block at BLOCK."""
    sc = SoftwareScene(hw, [BLOCK])
    yield sc
    sc.source.stop()


def _connect_scene(hw: HardwareConfig, scene: SoftwareScene, fake: FakePandaPy) -> Callable[[], Robot]:
    return lambda: RealSession(hw, HOST, camera=scene.camera(), panda_module=fake).robot


def _sample_pose(start: Pose, i: int, offset: np.ndarray, seed: int = 0) -> Pose:
    """Sample ``i``'s pose drawn around ``offset`` as the simulator draws it (dataset_builder)."""
    kinds, probs = list(POSE_KINDS), np.array(list(POSE_KINDS.values()))
    rng = np.random.default_rng([seed, i])
    kind = kinds[int(rng.choice(len(kinds), p=probs / probs.sum()))]
    return start @ delta_pose(*sample_camera_delta(kind, rng, offset))


def _never(prompt: str) -> str:
    raise AssertionError(f"asked on stdin: {prompt!r}")


def test_real_collection_is_homed_and_stays_in_the_envelope(hw: HardwareConfig, tmp_path: Path) -> None:
    fake = _fake()
    assert run_dataset(_args(tmp_path, 3), connect=_connect(hw, fake)) == 0
    assert len(read_index(tmp_path)["domains"]["real"]) == 3
    limits = load_safety()
    names = [c.name for c in fake.calls]
    assert names.index("Panda.move_to_joint_position") < names.index("Panda.move_to_pose", names.index(
        "Panda.move_to_joint_position"))  # homed through joint space before the first sample
    targets = [hand_to_gripper(Pose.from_quat(*c.args)) for c in fake.calls_to("Panda.move_to_pose")]
    assert all(limits.pose_violation(t) == "" for t in targets)
    # Homing (straight up, joints, the start pose), then a sample pose drawn around the start
    # pose and back, three times, then homing again at the end.
    start = hw.start_pose()
    assert len(targets) == 2 + 2 * 3 + 1
    assert targets[1].distance(start)[0] < 1e-9 and targets[-1].distance(start)[0] < 1e-9
    for sample, back in zip(targets[2:8:2], targets[3:9:2], strict=True):
        assert back.distance(start)[0] < 1e-9
        assert sample.position[2] <= start.position[2] + 1e-9  # at or below the start height


def test_failed_move_stops_the_collection_with_its_reason(hw: HardwareConfig, tmp_path: Path) -> None:
    fake = _fake(obstacle_z=0.28, contact_reflex=False)  # something below 28 cm blocks the hand
    with pytest.raises(HardwareError, match=r"^data collection stopped at sample 0000\d+ \(\w+\): move "
                                            r"to .* short of the target"):
        run_dataset(_args(tmp_path, 10), connect=_connect(hw, fake))
    taken = read_index(tmp_path)["domains"]["real"]
    assert 0 < len(taken) < 10  # kept up to the failure: resumable


def test_collection_refuses_to_start_away_from_home(hw: HardwareConfig, tmp_path: Path) -> None:
    fake = _fake()
    robot: Robot = RealSession(hw, HOST, camera=StubCamera(hw), panda_module=fake).robot
    with pytest.raises(CollectionStopped, match=r"not at the start pose \(\d+\.\d cm / \d+ deg away\): "
                                                "home the arm first"):
        build_real_dataset(tmp_path, 2, 0, robot, hw.start_pose(), load_safety())
    assert not fake.calls_to("Panda.move_to_pose")


@pytest.mark.parametrize("where", [BLOCK, MOVED, (0.0, 0.0), (-0.09, -0.09)])
def test_offset_of_a_raised_block_from_a_software_device_frame(hw: HardwareConfig, where: tuple[float, float]) -> None:
    sc = SoftwareScene(hw, [where])
    try:
        frame = sc.camera().get_frame()
    finally:
        sc.source.stop()
    assert frame.depth.shape == (hw.resolution, hw.resolution)
    seen = locate_object(frame.depth, frame.intrinsics, hw.mount)
    assert seen.found and seen.reason == ""
    np.testing.assert_allclose(seen.offset, where, atol=OFFSET_TOLERANCE)
    table = float((hw.start_pose() @ hw.mount).position[2])
    assert seen.distance == pytest.approx(table - BLOCK_HEIGHT, abs=0.001)  # m, the block's top


def test_prompts_every_n_images_and_q_stops_keeping_them(hw: HardwareConfig, scene: SoftwareScene,
                                                         tmp_path: Path) -> None:
    # Expected: placement 0 (3 images around BLOCK), home, prompt 1 (the person moves the block to
    # MOVED, Enter), placement 1 (3 images around MOVED), home, prompt 2 ("q"): stopped, 6 kept.
    prompts: list[str] = []
    answers = iter(["", "q"])

    def ask(prompt: str) -> str:
        prompts.append(prompt)
        scene.place([MOVED])
        return next(answers)

    fake = _fake()
    with pytest.raises(StoppedByPerson, match=r"^data collection stopped at your request: 6/8 real images in "
                                              r".* \(kept\): rerun the same command"):
        run_dataset(_args(tmp_path, 8, prompt_every=3), connect=_connect_scene(hw, scene, fake), ask=ask)
    assert StoppedByPerson.exit_code == 130
    assert prompts == [f"placement {p} done, {k}/8 images: move or swap the object, then press Enter (q to stop): "
                       for p, k in ((0, 3), (1, 6))]
    taken = read_index(tmp_path)["domains"]["real"]
    assert [s["placement"] for s in taken] == [0, 0, 0, 1, 1, 1]
    for s in taken:  # found again after the prompt: the poses were drawn around where the block stood
        np.testing.assert_allclose(s["object_offset_m"], BLOCK if s["placement"] == 0 else MOVED, atol=OFFSET_TOLERANCE)
    assert len(fake.calls_to("Panda.move_to_joint_position")) == 3  # homed at the start and before each prompt

    # Resumed: one more placement takes the last two images; the set is complete, nobody is asked.
    assert run_dataset(_args(tmp_path, 8, prompt_every=3), connect=_connect_scene(hw, scene, _fake()), ask=_never) == 0
    taken = read_index(tmp_path)["domains"]["real"]
    assert [s["placement"] for s in taken] == [0, 0, 0, 1, 1, 1, 2, 2]
    assert sorted(s["id"] for s in taken) == [f"{i:05d}" for i in range(8)]


def test_no_prompt_never_asks_but_homes_and_finds_the_object_again(hw: HardwareConfig, scene: SoftwareScene,
                                                                   tmp_path: Path) -> None:
    fake = _fake()
    assert run_dataset(_args(tmp_path, 5, prompt_every=2, no_prompt=True), connect=_connect_scene(hw, scene, fake),
                       ask=_never) == 0
    taken = read_index(tmp_path)["domains"]["real"]
    assert [s["placement"] for s in taken] == [0, 0, 1, 1, 2]
    assert all(np.allclose(s["object_offset_m"], BLOCK, atol=OFFSET_TOLERANCE) for s in taken)
    assert len(fake.calls_to("Panda.move_to_joint_position")) == 4  # at the start and after each placement
    limits = load_safety()
    targets = [hand_to_gripper(Pose.from_quat(*c.args)) for c in fake.calls_to("Panda.move_to_pose")]
    assert all(limits.pose_violation(t) == "" for t in targets)
    # After homing (straight up, the start pose): each sample pose drawn around the found block and
    # back, and the start pose again (homing) after each placement.
    start, expected = hw.start_pose(), []
    for i, s in enumerate(taken):
        expected += [_sample_pose(start, i, np.array(s["object_offset_m"])), start]
        if i in (1, 3, 4):  # the last image of a placement
            expected.append(start)
    assert len(targets) == 2 + len(expected)
    assert all(t.distance(e)[0] < 1e-3 for t, e in zip(targets[2:], expected, strict=True))  # m
    assert {s["kind"] for s in taken} != {"start"}  # some poses really were drawn around the block


def test_no_object_in_view_asks_for_one_then_collects(hw: HardwareConfig, tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    sc = SoftwareScene(hw, [])  # an empty table
    prompts: list[str] = []

    def ask(prompt: str) -> str:
        prompts.append(prompt)
        sc.place([BLOCK])  # the person puts an object down
        return ""

    try:
        assert run_dataset(_args(tmp_path, 2), connect=_connect_scene(hw, sc, _fake()), ask=ask) == 0
    finally:
        sc.source.stop()
    said = capsys.readouterr().out.splitlines()
    assert said[0] == "no object found in the start view: nothing stands above the table: no object pixels in the mask"
    assert prompts == ["place an object under the camera, then press Enter (q to stop): "]
    taken = read_index(tmp_path)["domains"]["real"]
    assert len(taken) == 2 and all(np.allclose(s["object_offset_m"], BLOCK, atol=OFFSET_TOLERANCE) for s in taken)


@pytest.mark.parametrize(("blocks", "why"), [
    ([], r"no object found in the start view: nothing stands above the table: no object pixels in the mask"),
    ([(0.15, 0.0)], r"the object in the start view is at \(15, 0\) cm from the start axis, outside the \+-10 cm the "
                    r"poses are drawn for: move it nearer the middle"),
])
def test_no_object_in_view_with_no_prompt_stops_in_one_line(hw: HardwareConfig, tmp_path: Path,
                                                            blocks: list[tuple[float, float]], why: str) -> None:
    sc = SoftwareScene(hw, blocks)
    fake = _fake()
    try:
        with pytest.raises(HardwareError, match=rf"^data collection stopped: {why} "
                                                r"\(--no-prompt: place an object under the camera and rerun"):
            run_dataset(_args(tmp_path, 2, no_prompt=True), connect=_connect_scene(hw, sc, fake), ask=_never)
    finally:
        sc.source.stop()
    assert not (tmp_path / "index.json").exists()  # no image taken
    assert len(fake.calls_to("Panda.move_to_pose")) == 2  # homing only (straight up, the start pose): no sample pose


def test_prompt_every_below_one_is_refused_before_any_work(hw: HardwareConfig, tmp_path: Path) -> None:
    fake = _fake()
    with pytest.raises(ConfigError, match=r"^--prompt-every: expected >= 1, found 0$"):
        run_dataset(_args(tmp_path, 2, prompt_every=0), connect=_connect(hw, fake), ask=_never)
    assert not fake.calls  # never connected
