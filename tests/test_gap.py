"""The physical reality gap: each component changes what it claims, and ``none`` changes nothing."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from app.errors import ConfigError
from app.hardware_config import load_hardware
from app.robot.interfaces import MotionStatus
from app.sim.gap import COMPONENTS, NONE_SAMPLE, GapSample, default_gap, draw_gap, load_gap
from app.sim.objects import load_object_set
from app.sim.pybullet_world import SEG_OBJECT
from app.sim.session import SimSession
from app.transforms import Pose, rot_z

HW = load_hardware()
FX = HW.intrinsics.fx  # model-resolution focal length (px)


def _centroid(mask: np.ndarray) -> np.ndarray:
    v, u = np.nonzero(mask == SEG_OBJECT)
    return np.array([u.mean(), v.mean()])


@pytest.fixture(scope="module")
def session():
    s = SimSession(domain="sim", seed=0)
    yield s
    s.close()


@pytest.fixture(scope="module")
def box():
    return load_object_set("seen").get("sugar_box")


PLACE = Pose(np.array([0.52, 0.02, 0.037]), rot_z(0.3))  # in view, off the optical axis


def _view(session: SimSession, spec, sample: GapSample) -> tuple[np.ndarray, Pose, object]:
    """The true mask seen at the start pose under ``sample``, the true camera pose, the frame."""
    session.set_gap(sample)
    session.reset(spec, PLACE)
    frame = session.camera.get_frame()
    true_mount = sample.true_mount(HW.mount)
    return session.truth.last_mask(), session.arm.pose() @ true_mount, frame


# ------------------------------------------------------------------------------ files
def test_shipped_gaps_load_and_none_is_all_zero() -> None:
    none, lab = load_gap("none"), load_gap("lab")
    assert (none.name, lab.name) == ("none", "lab") and len(lab.sha256) == 64
    assert draw_gap(none, 123) == replace(NONE_SAMPLE, latency_seed=draw_gap(none, 123).latency_seed)
    assert lab.mount_xyz_sd == 0.003 and lab.mount_rpy_sd == 0.7 and lab.latency_frames == 2
    assert lab.arm_time_constant == 0.1 and lab.table_height == 0.005
    assert default_gap("real") == "lab" and default_gap("sim") == "none"
    assert default_gap("config/domains/sim.yaml") == "none" and default_gap("real_clutter") == "lab"


@pytest.mark.parametrize("component", COMPONENTS)
def test_each_ablation_file_is_labs_component_alone(component) -> None:
    lab, only = draw_gap(load_gap("lab"), 7), draw_gap(load_gap(f"lab_only_{component}"), 7)
    none = draw_gap(load_gap("none"), 7)
    fields = {"hand_eye": ("mount_xyz", "mount_rpy"), "intrinsics": ("focal_scale", "principal_shift"),
              "latency": ("latency_frames", "latency_jitter"),
              "arm": ("arm_delay_ticks", "arm_time_constant", "arm_steady_error"),
              "objects": ("mass_scale", "friction_scale", "size_scale"), "table": ("table_dz",)}[component]
    for f in GapSample.__dataclass_fields__:
        expected = getattr(lab, f) if f in fields or f == "latency_seed" else getattr(none, f)
        assert getattr(only, f) == expected, f


@pytest.mark.parametrize(("text", "match"), [
    ("latency: {frames: -1}", "key 'latency.frames': expected an integer in \\[0, 30\\], found -1"),
    ("latency: {frames: 1, jitter_frames: 2}", "key 'latency.jitter_frames': expected an integer <= latency.frames"),
    ("hand_eye: {xyz_sd: 0.003}", "unknown key 'hand_eye.xyz_sd'"),
    ("objects: {mass_rel: big}", "key 'objects.mass_rel': expected a number"),
    ("tabel: {height_m: 0.01}", "unknown key 'tabel'"),
])
def test_bad_gap_files_fail_in_one_line(tmp_path, text, match) -> None:
    f = tmp_path / "g.yaml"
    f.write_text(text + "\n")
    with pytest.raises(ConfigError, match=match) as e:
        load_gap(f)
    assert str(f) in str(e.value) and "\n" not in str(e.value)


def test_cli_refuses_an_unknown_gap_in_one_line(capsys) -> None:
    from app.cli import main

    assert main(["--gap", "moon", "--tree", "oracle"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "moon.yaml: no such file" in err and "lab" in err


def test_draws_are_per_seed_and_within_the_configured_sizes() -> None:
    lab = load_gap("lab")
    draws = [draw_gap(lab, s) for s in range(200)]
    assert draw_gap(lab, 5) == draws[5] and draws[5] != draws[6]
    xyz = np.array([d.mount_xyz for d in draws])
    assert 0.002 < xyz.std() < 0.004  # sd 3 mm per axis
    assert all(abs(d.focal_scale[0] - 1) <= 0.01 and abs(d.principal_shift[1]) <= 2.0 for d in draws)
    assert all(0.7 <= d.mass_scale <= 1.3 and abs(d.table_dz) <= 0.005 for d in draws)
    assert draws[5].record()["mount_xyz"] == [round(x, 6) for x in draws[5].mount_xyz]


# ------------------------------------------------------------------------------ camera
def test_mount_error_moves_the_object_in_the_image_by_the_predicted_pixels(session, box) -> None:
    base_mask, base_cam, _ = _view(session, box, NONE_SAMPLE)
    centre = session.world.object_pose().position + np.array([0, 0, box.extents[2] / 2])  # top face centre
    for sample in (GapSample(mount_xyz=(0.02, 0.0, 0.0)), GapSample(mount_xyz=(0.0, -0.015, 0.0)),
                   GapSample(mount_rpy=(0.0, 2.0, 0.0)), GapSample(mount_rpy=(1.5, 0.0, 0.0))):
        mask, cam, frame = _view(session, box, sample)
        predicted = (HW.intrinsics.project(cam.inverse().apply(centre[None]))
                     - HW.intrinsics.project(base_cam.inverse().apply(centre[None])))[0]
        measured = _centroid(mask) - _centroid(base_mask)
        assert np.linalg.norm(predicted) > 2.0  # a shift worth measuring
        assert measured == pytest.approx(predicted, abs=0.35), sample
        # The tree still sees the configured mount and intrinsics.
        assert np.array_equal(session.robot.arm.camera_mount.homogeneous, HW.mount.homogeneous)
        assert frame.intrinsics == HW.intrinsics


def test_intrinsics_error_scales_and_shifts_the_image(session, box) -> None:
    base_mask, _, _ = _view(session, box, NONE_SAMPLE)
    k = HW.intrinsics
    shifted, _, frame = _view(session, box, GapSample(principal_shift=(15.0, -9.0)))  # native px
    scale = HW.resolution / HW.native.height  # native 480 px square crop -> model px
    assert _centroid(shifted) - _centroid(base_mask) == pytest.approx([15 * scale, -9 * scale], abs=0.3)
    zoomed, _, _ = _view(session, box, GapSample(focal_scale=(1.04, 1.04)))
    offset, offset_zoomed = _centroid(base_mask) - [k.cx, k.cy], _centroid(zoomed) - [k.cx, k.cy]
    assert offset_zoomed == pytest.approx(1.04 * offset, abs=0.3)
    assert frame.intrinsics == k  # the frame still reports the configured intrinsics


def _moving_scene(session: SimSession, box, sample: GapSample, ticks: int) -> list:
    """(time, frame) of each tick while the camera slides 6 cm/s sideways over the object."""
    session.set_gap(sample)
    session.reset(box, PLACE)
    frames = []
    for _ in range(ticks):
        frames.append((session.clock.now(), session.camera.get_frame()))
        session.arm.command_velocity(np.array([0.06, 0.0, 0.0, 0.0, 0.0, 0.0]), "camera")
        session.clock.advance()
    return frames


def test_latency_delays_a_moving_scene_by_the_configured_periods(session, box) -> None:
    now = _moving_scene(session, box, NONE_SAMPLE, 12)
    late = _moving_scene(session, box, GapSample(latency_frames=2), 12)
    period = session.clock.period
    for k in range(2, 12):
        t, frame = late[k]
        assert frame.timestamp == pytest.approx(t - 2 * period)  # stamped with its capture time
        assert np.array_equal(frame.rgb, now[k - 2][1].rgb)  # and showing the scene of then
        assert not np.array_equal(frame.rgb, now[k][1].rgb)  # (the scene does move)
    assert np.array_equal(late[0][1].rgb, now[0][1].rgb)  # the stream's first frame: nothing older
    jittery = _moving_scene(session, box, GapSample(latency_frames=2, latency_jitter=1, latency_seed=3), 40)
    delays = [round((t - f.timestamp) / period) for t, f in jittery[4:]]
    assert set(delays) <= {1, 2, 3} and len(set(delays)) >= 2
    seqs = [f.seq for _, f in jittery]
    assert seqs == sorted(seqs)  # never out of order (a late frame repeats instead)


# ------------------------------------------------------------------------------ arm
def _step_response(session: SimSession, sample: GapSample, ticks: int = 30) -> np.ndarray:
    session.set_gap(sample)
    session.reset(load_object_set("seen").get("tuna_can"), Pose(np.array([0.65, 0.2, 0.015]), np.eye(3)))
    z0 = session.arm.pose().position[2]
    out = []
    for _ in range(ticks):
        session.arm.command_velocity(np.array([0.0, 0.0, 0.03, 0.0, 0.0, 0.0]), "gripper")  # 3 cm/s down
        session.clock.advance()
        out.append(z0 - session.arm.pose().position[2])
    session.arm.stop()
    return np.array(out)


def test_the_lag_shows_in_the_arms_step_response(session) -> None:
    period = session.clock.period
    t = period * np.arange(1, 31)
    prompt = _step_response(session, NONE_SAMPLE)
    assert prompt == pytest.approx(0.03 * t, abs=0.0015)  # follows at once (IK tracking: < 1.5 mm)
    lagged = _step_response(session, GapSample(arm_delay_ticks=1, arm_time_constant=0.1))
    assert abs(lagged[0]) < 2e-4  # the first period: nothing yet (one tick late)
    tau, late = 0.1, np.clip(t - period, 0, None)
    expected = 0.03 * (late - tau * (1 - np.exp(-late / tau)))  # first-order lag of a velocity step
    assert lagged == pytest.approx(expected, abs=0.0015)
    assert prompt[9] - lagged[9] > 0.003  # after 1/3 s the lag costs more than 3 mm


def test_pose_moves_settle_off_target_by_the_steady_state_error(session) -> None:
    def settle(sample: GapSample) -> np.ndarray:
        session.set_gap(sample)
        session.reset(load_object_set("seen").get("tuna_can"), Pose(np.array([0.65, 0.2, 0.015]), np.eye(3)))
        target = session.arm.pose() @ Pose(np.array([0.02, 0.0, 0.05]), np.eye(3))
        session.arm.move_to(target)
        for _ in range(60):
            session.clock.advance()
        assert session.arm.motion_status() == MotionStatus.DONE
        return session.arm.pose().position - target.position

    exact = settle(NONE_SAMPLE)
    err = np.array([0.004, -0.003, 0.002])
    assert np.linalg.norm(exact) < 0.003  # within the move tolerance
    assert settle(GapSample(arm_steady_error=tuple(err))) - exact == pytest.approx(err, abs=0.0005)


# ------------------------------------------------------------------------------ objects and table
def test_object_and_table_are_built_as_drawn(session, box) -> None:
    sample = GapSample(mass_scale=1.3, friction_scale=0.8, size_scale=1.05, table_dz=0.005)
    session.set_gap(sample)
    rest = session.reset(box, 4)
    mass, friction = session.world.object_dynamics()
    assert mass == pytest.approx(box.mass * 1.3) and friction == pytest.approx(box.friction * 0.8)
    lo, hi = session.world.object_aabb()
    assert hi[2] - lo[2] == pytest.approx(box.extents[2] * 1.05, abs=0.003)  # AABB margin ~1 mm
    assert lo[2] == pytest.approx(0.005, abs=0.002)  # resting on the raised table
    assert rest.position[2] == pytest.approx(0.005 + box.extents[2] * 1.05 / 2, abs=0.002)
    session.set_gap(NONE_SAMPLE)
    session.reset(box, 4)
    assert session.world.object_aabb()[0][2] == pytest.approx(0.0, abs=0.002) and session.world.table_z == 0.0


# ------------------------------------------------------------------------------ none = today
def test_none_reproduces_the_simulator_without_a_gap_exactly(tmp_path, box) -> None:
    """An episode under ``none`` is bit-for-bit the episode of a session never given a gap."""
    from app.episode import run_sim_episode
    from app.tree_config import load_tree_config
    from tests.fakes.truth_models import ColourModels

    cfg = load_tree_config("vs_only")
    with_none = run_sim_episode(cfg, box, 11, "sim", ColourModels(), tmp_path / "a", gap="none")

    class NoGapSession(SimSession):  # the simulator as it was: set_gap never touches the backends
        def set_gap(self, sample: GapSample) -> None:
            assert sample == replace(NONE_SAMPLE, latency_seed=sample.latency_seed)

    s = NoGapSession(HW, domain="sim", seed=11)
    try:
        bare = run_sim_episode(cfg, box, 11, "sim", ColourModels(), tmp_path / "b", session=s)
    finally:
        s.close()
    keys = ("success", "ticks", "vs_iterations", "sim_time", "pose_error", "table_strikes", "object_pushed_m")
    assert with_none["success"]
    assert {k: with_none[k] for k in keys} == {k: bare[k] for k in keys}
    assert with_none["gap_sample"]["mount_xyz"] == [0.0, 0.0, 0.0]


@pytest.mark.parametrize("correct", [False, True])
def test_settle_correction_takes_the_rest_error_out_but_never_goes_deeper(session, correct) -> None:
    """A descent that rests 4 mm low and 3 mm aside: with the correction it stops 8 mm short,
    measures the rest error and takes it out of the last move, so it never goes low on the way."""
    from behaviours.motion import Descend

    session.set_gap(GapSample(arm_steady_error=(0.003, 0.0, -0.004)))
    session.reset(load_object_set("seen").get("tuna_can"), Pose(np.array([0.65, 0.2, 0.015]), np.eye(3)))
    node = Descend(0.05)
    node.correct_settle = correct
    node.setup(robot=session.robot)
    goal = session.arm.pose() @ Pose(np.array([0.0, 0.0, 0.05]), np.eye(3))
    statuses, heights = [], []
    node.tick_once()
    for _ in range(120):
        statuses.append(node.status.value)
        if node.status.value != "RUNNING":
            break
        for _ in range(session.clock.substeps):  # physics steps: the lowest point on the way
            session.clock.arm.on_physics_step()
            session.world.step()
            heights.append(session.arm.pose().position[2])
        session.clock.ticks += 1
        node.tick_once()
    assert statuses[-1] == "SUCCESS"
    off = session.arm.pose().position - goal.position
    if correct:  # within the arm's own move tolerance (3 mm), and no longer low
        assert np.linalg.norm(off) < 0.0025 and off[2] > -0.002 and "correcting" in node.feedback_message
        assert min(heights) > goal.position[2] - 0.0015  # the pre-stop: never went low on the way
    else:  # the rest error, less up to the arm's 3 mm move tolerance (a move is done that close)
        assert off == pytest.approx([0.003, 0.0, -0.004], abs=0.0025) and off[2] < -0.001

    session.set_gap(GapSample(arm_steady_error=(0.0, 0.0, 0.004)))  # rests 4 mm high: left there
    session.reset(load_object_set("seen").get("tuna_can"), Pose(np.array([0.65, 0.2, 0.015]), np.eye(3)))
    node = Descend(0.05)
    node.correct_settle = correct
    node.setup(robot=session.robot)
    goal = session.arm.pose() @ Pose(np.array([0.0, 0.0, 0.05]), np.eye(3))
    node.tick_once()
    for _ in range(120):
        if node.status.value != "RUNNING":
            break
        session.clock.advance()
        node.tick_once()
    assert 0.001 < session.arm.pose().position[2] - goal.position[2] < 0.004 + 0.003  # left high, not pushed down


def test_descent_keeps_the_fingertips_above_the_configured_table() -> None:
    """A descent measured against a table 5 mm low would put the fingertips below z = 0, where the
    envelope refuses it (the lab_gap failures): it is shortened to keep them 1 mm above."""
    from app.robot.safety import load_safety
    from behaviours.motion import FLOOR_CLEARANCE_M, floor_limited

    tips = HW.fingertip_corners()
    start = Pose.top_down(np.array([0.5, 0.0, 0.30]), 0.4)
    deep = Pose(np.array([0.0, 0.0, 0.30 - 0.008]), np.eye(3))  # grasp point 8 mm up: tips 0.5 mm under z = 0
    short, note = floor_limited(start, deep, tips)
    limits = load_safety()
    assert limits.pose_violation(start @ deep) != "" and limits.pose_violation(start @ short) == ""
    assert limits.lowest_point(start @ short) == pytest.approx(FLOOR_CLEARANCE_M)
    assert "shortened 1.5 mm" in note
    fine = Pose(np.array([0.0, 0.0, 0.20]), np.eye(3))
    assert floor_limited(start, fine, tips) == (fine, "")  # far above: untouched
