"""Multi-object scenes (app/sim/scene.py) and their scoring (app/scene_episode.py)."""

from __future__ import annotations

import numpy as np
import pytest

from app.errors import ConfigError
from app.sim.scene import (
    SceneScore,
    build_scene,
    footprint_radius,
    load_scene_config,
    parse_scene,
    sample_layout,
)


def test_parse_scene() -> None:
    assert str(parse_scene("single")) == "single" and not parse_scene("single").multi
    assert parse_scene("multi:4").n == 4 and parse_scene("multi:4").multi
    for bad in ("multi:1", "multi:6", "multi:x", "many", ""):
        with pytest.raises(ConfigError, match="--scene"):
            parse_scene(bad)


def test_scene_config_rejects_unknown_keys(tmp_path) -> None:
    f = tmp_path / "s.yaml"
    f.write_text((load_scene_config().source and open(load_scene_config().source).read()) + "bogus: 1\n")
    with pytest.raises(ConfigError, match="bogus"):
        load_scene_config(f)


def test_layout_footprints_never_overlap(seen) -> None:
    cfg = load_scene_config()
    specs = list(seen.objects[:5])
    for seed in range(30):
        poses = sample_layout(specs, np.array([0.5, 0.0]), cfg, np.random.default_rng(seed))
        for i in range(5):
            for j in range(i + 1, 5):
                d = np.hypot(*(poses[i].position[:2] - poses[j].position[:2]))
                assert d >= footprint_radius(specs[i]) + footprint_radius(specs[j]) - 1e-9
            assert np.all(np.abs(poses[i].position[:2] - [0.5, 0.0]) <= cfg.area_half_width)


def test_layout_refuses_a_crowded_area(seen) -> None:
    from dataclasses import replace

    cfg = replace(load_scene_config(), area_half_width=0.01, max_placement_tries=20)
    with pytest.raises(ConfigError, match="no free place"):
        sample_layout(list(seen.objects[:4]), np.array([0.5, 0.0]), cfg, np.random.default_rng(0))


def test_build_scene_places_objects_apart_some_touching(real_session, seen) -> None:
    s = real_session
    specs = [seen.get(n) for n in ("sugar_box", "tomato_can", "pudding_box", "jenga_block")]
    touching = 0
    for seed in range(6):
        objs = build_scene(s, specs, seed)
        assert [o.spec.name for o in objs] == [sp.name for sp in specs]
        assert len(s.world.object_ids) == 4
        gaps = [s.world.bodies_distance(a.body, b.body) for i, a in enumerate(objs) for b in objs[i + 1:]]
        assert min(gaps) > -0.002  # no interpenetration beyond contact slop
        touching += sum(g < 0.003 for g in gaps)
        mask = s.truth.last_mask()
        assert (mask == 1).sum() > 200  # every object is labelled "object" in the true mask
    assert touching >= 2  # some scenes hold touching objects
    # the same seed gives the same scene
    a = SceneScore(s, build_scene(s, specs, 3)).positions()
    b = SceneScore(s, build_scene(s, specs, 3)).positions()
    assert a == b
    # a single-object reset afterwards removes the further objects
    s.reset(seen.get("lemon"), 0)
    assert len(s.world.object_ids) == 1


def test_build_scene_builds_objects_and_table_as_the_gap_draws_them(real_session, seen) -> None:
    """Scene episodes draw the physical gap like single-object ones: the table at its drawn height,
    every object (not only the first) at its drawn size, resting on that table."""
    from app.sim.gap import NONE_SAMPLE, GapSample

    s = real_session
    specs = [seen.get("sugar_box"), seen.get("pudding_box")]
    sample = GapSample(size_scale=1.2, table_dz=0.01)  # exaggerated: 20 % larger, table 1 cm up
    s.set_gap(sample)
    try:
        objs = build_scene(s, specs, 2)
        assert s.world.table_z == pytest.approx(0.01)
        for o, spec in zip(objs, specs, strict=True):
            built = sample.scale_object(spec)
            lo, hi = s.world.body_aabb(o.body)
            height = hi[2] - lo[2]
            assert lo[2] == pytest.approx(0.01, abs=0.003), spec.name  # resting on the raised table
            assert height == pytest.approx(2 * built.rest_height, abs=0.004), spec.name  # built 20 % larger
            assert height > 2 * spec.rest_height * 1.1, spec.name
    finally:
        s.set_gap(NONE_SAMPLE)
        s.reset(seen.get("lemon"), 0)


def test_scene_score_names_lifted_and_off_table(real_session, seen) -> None:
    from app.transforms import Pose

    s = real_session
    objs = build_scene(s, [seen.get("sugar_box"), seen.get("lemon")], 1)
    score = SceneScore(s, objs)
    assert score.lifted(0.09) == [] and score.off_table() == []
    w = s.world
    p = w.body_pose(objs[1].body)
    w.set_body_pose(objs[1].body, Pose(p.position + [0, 0, -0.2], p.matrix))
    assert score.off_table() == ["lemon"]
    w.set_body_pose(objs[1].body, Pose(p.position + [0, 0, 0.15], p.matrix))
    assert score.lifted(0.09) == ["lemon"]
    s.truth.locked = True
    try:
        from app.sim.truth import GroundTruthLocked

        with pytest.raises(GroundTruthLocked):
            score.lifted(0.09)
    finally:
        s.truth.locked = False


def test_grasp_scoring_names_two_objects_and_knocked_off(real_session, seen) -> None:
    """Scoring of a multi-object grasp: two objects up at once, or one off the table, are named
    failures even when the tree reported success."""
    from app.runner import EpisodeResult
    from app.scene_episode import _score_grasp
    from app.transforms import Pose
    from app.tree_config import load_tree_config

    s = real_session
    cfg = load_tree_config("drl_gan_vs_gated")
    objs = build_scene(s, [seen.get("sugar_box"), seen.get("lemon"), seen.get("duck")], 2)
    score = SceneScore(s, objs)
    probe = type("P", (), {"measured": {"at": "close", "position_m": 0.01}})()
    w = s.world
    ok = EpisodeResult("success")
    for o in objs[:2]:
        p = w.body_pose(o.body)
        w.set_body_pose(o.body, Pose(p.position + [0, 0, 0.15], p.matrix))
    r = _score_grasp(s, None, ok, objs, score, probe, cfg)
    assert not r["success"] and "two objects lifted" in r["reason"]
    objs = build_scene(s, [seen.get("sugar_box"), seen.get("lemon"), seen.get("duck")], 2)
    score = SceneScore(s, objs)
    p = w.body_pose(objs[2].body)
    w.set_body_pose(objs[2].body, Pose(p.position + [0, 0, -0.3], p.matrix))
    r = _score_grasp(s, None, ok, objs, score, probe, cfg)
    assert not r["success"] and "knocked off the table (duck)" in r["reason"]
