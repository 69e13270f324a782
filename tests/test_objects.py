"""The object sets, their good grasps and the generated meshes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from app.errors import ConfigError
from app.sim import softmesh
from app.sim.objects import MAX_GRASP_WIDTH, ObjectSpec, SoftParams, load_grasps, load_object_set
from app.transforms import Pose, rot_z

GRIPPER_OPENING = 0.08  # m, the Panda hand


@pytest.fixture(scope="module")
def sets():
    """Both committed sets."""
    return load_object_set("seen"), load_object_set("unseen")


def _aspect(spec: ObjectSpec) -> float:
    ext = spec.extents
    return float(max(ext[:2]) / min(ext[:2]))


def test_sets_load_ten_seen_six_unseen_disjoint(sets):
    seen, unseen = sets
    assert len(seen.objects) == 10 and len(unseen.objects) == 6
    assert not set(seen.names) & set(unseen.names)


def test_every_object_fits_the_gripper_and_is_not_tiny(sets):
    for spec in (o for s in sets for o in s.objects):
        assert min(spec.extents[:2]) <= MAX_GRASP_WIDTH < GRIPPER_OPENING, spec.name
        assert max(spec.extents) >= 0.035, spec.name  # no trivially small objects
    largest = max(max(o.extents) for s in sets for o in s.objects)
    assert largest >= 0.08  # sizes reach 8-9 cm and beyond (long objects)


def test_set_is_hard_enough(sets):
    everything = [o for s in sets for o in s.objects]
    for group in sets:  # elongated objects, where a wrong yaw fails, in both sets
        assert sum(_aspect(o) >= 2.0 for o in group.objects) >= 3
    assert any(o.extents[2] <= 0.03 for o in everything)  # a flat one
    assert any(o.round for o in everything)  # a round one
    for spec in everything:  # realistic friction, not the grippy 1.0
        assert 0.5 <= spec.friction <= 0.8, spec.name


def test_every_object_has_two_to_ten_good_grasps(sets):
    table = load_grasps()
    for spec in (o for s in sets for o in s.objects):
        assert 2 <= len(spec.grasps) <= 10, spec.name
        assert list(spec.grasps) == [tuple(g) for g in table[spec.name]]
        for x, y, z, _ in spec.grasps:  # inside the object's footprint, above the table
            assert abs(x) <= spec.extents[0] / 2 and abs(y) <= spec.extents[1] / 2, spec.name
            assert spec.rest_height + z > 0.0, spec.name


def test_objects_rest_upright_at_their_rest_height(sets):
    from app.sim.session import SimSession

    with SimSession(domain="sim") as s:
        for spec in (o for group in sets for o in group.objects):
            pose = s.reset(spec, Pose(np.array([0.5, 0.0, spec.rest_height + 0.002]), rot_z(0.4)))
            assert abs(pose.position[2] - spec.rest_height) < 0.002, spec.name  # 2 mm: contact margin
            assert pose.matrix[2, 2] > np.cos(np.radians(3.0)), spec.name  # upright within 3 deg
            assert abs(np.degrees(pose.yaw) - np.degrees(0.4)) < 2.0, spec.name


def _write_set(tmp_path: Path, item: str) -> Path:
    path = tmp_path / "objs.yaml"
    path.write_text(f"name: mine\nobjects:\n  - {item}\n")
    return path


def test_user_object_file_loads(tmp_path):
    path = _write_set(tmp_path, "{name: cup, shape: cylinder, size: [0.03, 0.08], mass: 0.2, friction: 0.6, "
                                "color: [0.2, 0.2, 0.8], round: true}")
    oset = load_object_set(str(path))
    assert oset.names == ["cup"] and oset.get("cup").round


@pytest.mark.parametrize(("item", "key"), [
    ("{name: a, shape: box, size: [0.05, 0.03, 0.03], mass: 0.1, friction: grippy, color: [1, 1, 1]}",
     "objects[0].friction"),
    ("{name: a, shape: blob, size: [0.05, 0.03, 0.03], mass: 0.1, friction: 0.6, color: [1, 1, 1]}",
     "objects[0].shape"),
    ("{name: a, shape: box, size: [0.05, 0.03], mass: 0.1, friction: 0.6, color: [1, 1, 1]}",
     "objects[0].size"),
    ("{name: a, shape: box, size: [0.05, 0.03, 0.03], friction: 0.6, color: [1, 1, 1]}",
     "objects[0].mass"),
    ("{name: a, shape: box, size: [0.05, 0.03, 0.03], mass: 0.1, friction: 0.6, color: [1, 1, 1], frict: 1}",
     "objects[0].frict"),
])
def test_malformed_object_file_is_one_line_naming_the_key(tmp_path, item, key):
    with pytest.raises(ConfigError) as e:
        load_object_set(str(_write_set(tmp_path, item)))
    msg = str(e.value)
    assert len(msg.splitlines()) == 1 and f"'{key}'" in msg


def test_oversize_object_is_refused(tmp_path):
    path = _write_set(tmp_path, "{name: melon, shape: sphere, size: [0.06], mass: 0.5, friction: 0.6, "
                                "color: [0.3, 0.8, 0.3], round: true}")
    with pytest.raises(ConfigError, match="'melon'.*does not fit the gripper"):
        load_object_set(str(path))


def test_committed_meshes_are_what_the_generator_writes(tmp_path):
    sizes = softmesh.generate(tmp_path)
    for name in softmesh.MESHES:
        assert (tmp_path / name).read_bytes() == (softmesh.MESH_DIR / name).read_bytes(), name
    seen, unseen = load_object_set("seen"), load_object_set("unseen")
    for spec in (*seen.objects, *unseen.objects):  # YAML extents match the generated meshes
        if spec.shape == "mesh":
            name = Path(spec.asset).name
            assert np.allclose(spec.extents, sizes[name], atol=5e-4), spec.name


def test_tetra_mesh_is_conforming_with_positive_volumes():
    ext = (0.1, 0.04, 0.022)
    points, tets = softmesh.box_tets(ext, (8, 4, 2))
    vol = softmesh.tet_volumes(points, tets)
    assert np.all(vol > 0)
    assert np.isclose(vol.sum(), np.prod(ext))  # the tetrahedra tile the box exactly
    faces: dict[tuple[int, ...], int] = {}  # each interior face is shared by exactly two tets
    for t in tets:
        for drop in range(4):
            f = tuple(sorted(np.delete(t, drop)))
            faces[f] = faces.get(f, 0) + 1
    assert max(faces.values()) == 2
    assert np.allclose(softmesh.read_vtk_points(softmesh.MESH_DIR / "salmon_fillet.vtk"), points, atol=1e-6)


@pytest.mark.slow
def test_soft_body_rests_and_renders_as_object_class():
    from app.sim.session import SimSession

    spec = ObjectSpec(name="fillet", shape="soft", size=(0.1, 0.04, 0.022), mass=0.1, friction=0.55,
                      color=(0.98, 0.5, 0.4), asset="meshes/salmon_fillet.vtk", soft=SoftParams(300.0, 600.0, 0.01))
    with SimSession(domain="sim", deformable=True) as s:
        s.reset(spec, Pose(np.array([0.5, 0.0, spec.rest_height + 0.002]), np.eye(3)))
        s.world.check_soft_body()  # raises if it exploded
        s.robot.camera.get_frame()
        mask = s.truth.last_mask()
        assert (mask == 1).sum() > 50  # the soft body is segmented as "object"
        assert abs(s.truth.object_pose().position[2] - spec.rest_height) < 0.003
