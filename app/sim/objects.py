"""Object sets (``config/objects/*.yaml``) and their good grasps (``config/objects/grasps.yaml``).

An object is described by its shape and physics; its frame is the body frame PyBullet uses
(the geometric centre for primitives). Good grasps are top-down gripper poses in that frame:
``[x, y, z, yaw_deg]`` with the finger line at ``yaw`` about the object's z axis.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from app import CONFIG_DIR
from app.config import Section, load_yaml, resolve
from app.errors import ConfigError
from app.transforms import Pose

SHAPES = ["box", "cylinder", "sphere", "capsule", "ellipsoid", "mesh", "urdf", "soft"]
_SIZE_LEN = {"box": 3, "cylinder": 2, "sphere": 1, "capsule": 2, "ellipsoid": 3}
MAX_GRASP_WIDTH = 0.078  # m: the Panda hand opens 8 cm; wider than ~7.8 cm fails (FACTS.md)
CHAIN_SHAPES = ("capsule", "box")  # compliant as a chain of rigid pieces along the long axis (app/sim/compliant.py)
PAD_SHAPES = ("sphere", "ellipsoid")  # compliant as spring-loaded pads around the equator


@dataclass(frozen=True)
class Compliance:
    """How an object yields (object schema key ``compliance``).

    Attributes:
        segments: ``chain``: rigid pieces along the long axis (odd, 3-7); ``pads``: spring-loaded
            pads around the equator (4-12).
        stiffness: Spring per joint: N·m/rad (chain) or N/m (pads).
        damping: Damper per joint: N·m·s/rad (chain) or N·s/m (pads).
        max_bend_deg: Chain only: largest bend of one joint (deg).
        travel: Pads only: how far a pad can be pushed in (m).
    """

    segments: int
    stiffness: float
    damping: float
    max_bend_deg: float = 30.0
    travel: float = 0.006


def kind_of(shape: str) -> str:
    """``chain`` or ``pads`` for a shape that can be compliant.

    Raises:
        ConfigError: For any other shape.
    """
    if shape in CHAIN_SHAPES:
        return "chain"
    if shape in PAD_SHAPES:
        return "pads"
    raise ConfigError(f"compliance: shape {shape!r} cannot be compliant (expected one of "
                      f"{list(CHAIN_SHAPES + PAD_SHAPES)})")


def check_compliance(c: Compliance, shape: str, extents: np.ndarray, where: str) -> None:
    """Refuse parameters the builder cannot honour, naming ``where`` (file and key).

    Raises:
        ConfigError: Even or out-of-range segment counts, or a travel too deep for the object.
    """
    kind = kind_of(shape)
    if kind == "chain" and (c.segments % 2 == 0 or not 3 <= c.segments <= 7):
        raise ConfigError(f"{where}.segments': expected an odd number 3-7 for a {shape} (the middle piece is the "
                          f"object's frame), found {c.segments}")
    if kind == "pads":
        if not 4 <= c.segments <= 12:
            raise ConfigError(f"{where}.segments': expected 4-12 pads, found {c.segments}")
        if c.travel >= 0.5 * float(min(extents[:2])) / 2:
            raise ConfigError(f"{where}.travel': {c.travel} m is too deep for a {min(extents[:2]) * 100:.1f} cm "
                              "wide object (expected < a quarter of its width)")


@dataclass(frozen=True)
class SoftParams:
    """Neo-Hookean soft body: ``mu``, ``lam`` (Pa), ``damping``; mesh is a ``.vtk`` tetra mesh."""

    mu: float
    lam: float
    damping: float


@dataclass(frozen=True)
class ObjectSpec:
    """One graspable object.

    Attributes:
        name: Unique name.
        shape: One of :data:`SHAPES`.
        size: Shape parameters in metres (see :meth:`PyBulletWorld.spawn_rigid`); for ``mesh``,
            ``urdf`` and ``soft`` the full extents (x, y, z) after scaling, used for placement.
        mass: kg. friction: lateral friction coefficient.
        color: Sim-domain RGB in [0, 1].
        asset: Mesh/VTK path (relative to ``config/objects``) or pybullet_data URDF name.
        scale: Mesh/URDF scale.
        soft: Soft-body parameters for ``shape: soft``.
        compliance: Articulated compliance (:mod:`app.sim.compliant`): a chain of segments for
            capsules and boxes, a core with spring-loaded pads for spheres and ellipsoids.
        round: True when the object has no grasp axis (yaw is free).
        description: What it stands for.
    """

    name: str
    shape: str
    size: tuple[float, ...]
    mass: float
    friction: float
    color: tuple[float, float, float]
    asset: str = ""
    scale: float = 1.0
    soft: SoftParams | None = None
    compliance: Compliance | None = None
    round: bool = False
    description: str = ""
    grasps: tuple[tuple[float, float, float, float], ...] = field(default=())

    @property
    def extents(self) -> np.ndarray:
        """Full extents (x, y, z) of the object at rest, metres."""
        s = self.size
        if self.shape == "cylinder":
            return np.array([2 * s[0], 2 * s[0], s[1]])
        if self.shape == "sphere":
            return np.array([2 * s[0]] * 3)
        if self.shape == "capsule":
            return np.array([s[1], 2 * s[0], 2 * s[0]])
        return np.array(s[:3])

    @property
    def asset_path(self) -> str:
        """Absolute path of a mesh/VTK asset, or the URDF name for ``urdf``."""
        if self.shape == "urdf":
            return self.asset
        return str(CONFIG_DIR / "objects" / self.asset)

    @property
    def rest_height(self) -> float:
        """Height of the object frame above the table when resting on its base (m)."""
        return float(self.extents[2] / 2)

    def grasp_poses(self, object_pose: Pose) -> list[Pose]:
        """Good grasps as gripper poses in the base frame, for an object at ``object_pose``."""
        out = []
        for x, y, z, yaw in self.grasps:
            g = object_pose @ Pose.top_down(np.array([x, y, z]), np.radians(yaw))
            out.append(g)
        return out


@dataclass(frozen=True)
class ObjectSet:
    """A named list of objects (``seen``, ``unseen`` or a user file)."""

    name: str
    path: str
    objects: tuple[ObjectSpec, ...]

    def get(self, name: str) -> ObjectSpec:
        """The object called ``name``."""
        for o in self.objects:
            if o.name == name:
                return o
        raise ConfigError(f"{self.path}: no object named {name!r} (expected one of {self.names})")

    @property
    def names(self) -> list[str]:
        """Object names in file order."""
        return [o.name for o in self.objects]


def load_grasps(path: Path | None = None) -> dict[str, list[tuple[float, float, float, float]]]:
    """Verified good grasps per object name from ``config/objects/grasps.yaml``."""
    path = path or CONFIG_DIR / "objects" / "grasps.yaml"
    if not path.exists():
        return {}
    root = Section(load_yaml(path), path)
    out: dict[str, list[tuple[float, float, float, float]]] = {}
    for name in root.data:
        sec = root.section(str(name))
        items = sec.list("grasps")
        poses = []
        for i, g in enumerate(items):
            if not (isinstance(g, list) and len(g) == 4 and all(isinstance(v, (int, float)) for v in g)):
                raise ConfigError(f"{path}: key '{name}.grasps[{i}]': expected [x, y, z, yaw_deg], found {g!r}")
            poses.append(tuple(float(v) for v in g))
        out[str(name)] = poses
    return out


def _parse_object(sec: Section, grasps: dict[str, list[tuple[float, float, float, float]]]) -> ObjectSpec:
    sec.unknown_keys({"name", "shape", "size", "mass", "friction", "color", "asset", "scale", "soft",
                      "compliance", "round", "description", "grasps"})
    name = sec.string("name")
    shape = sec.string("shape", choices=SHAPES)
    n = _SIZE_LEN.get(shape, 3)
    size = tuple(sec.vector("size", n, lo=0.003, hi=0.3))
    soft = None
    if shape == "soft":
        s = sec.section("soft")
        soft = SoftParams(s.number("mu", lo=1.0), s.number("lam", lo=1.0), s.number("damping", lo=0.0))
    compliance = None
    if "compliance" in sec.data:
        c = sec.section("compliance")
        c.unknown_keys({"segments", "stiffness", "damping", "max_bend_deg", "travel"})
        compliance = Compliance(
            segments=c.integer("segments", lo=3, hi=12),
            stiffness=c.number("stiffness", lo=1e-4, hi=1e5),  # N·m/rad (chain) or N/m (pads)
            damping=c.number("damping", lo=0.0, hi=1e3),  # N·m·s/rad or N·s/m
            max_bend_deg=c.number("max_bend_deg", default=30.0, lo=1.0, hi=90.0),
            travel=c.number("travel", default=0.006, lo=0.001, hi=0.03))  # m
    asset = sec.string("asset", default="")
    if shape in ("mesh", "urdf", "soft") and not asset:
        raise ConfigError(f"{sec.source}: key '{sec.prefix}.asset': expected a file for shape {shape!r}")
    if shape in ("mesh", "soft") and not (CONFIG_DIR / "objects" / asset).is_file():
        raise ConfigError(f"{sec.source}: key '{sec.prefix}.asset': file {asset!r} not found in config/objects")
    own = sec.list("grasps", default=[])
    spec = ObjectSpec(
        name=name, shape=shape, size=size,
        mass=sec.number("mass", lo=0.005, hi=2.0),
        friction=sec.number("friction", lo=0.05, hi=2.0),
        color=tuple(sec.vector("color", 3, lo=0, hi=1)),
        asset=asset, scale=sec.number("scale", default=1.0, lo=0.01, hi=10),
        soft=soft, compliance=compliance, round=sec.boolean("round", default=False),
        description=sec.string("description", default=""),
        grasps=tuple(tuple(float(v) for v in g) for g in (own or grasps.get(name, []))),
    )
    if compliance is not None:
        check_compliance(compliance, shape, spec.extents, f"{sec.source}: key '{sec.prefix}.compliance")
    width = float(min(spec.extents[:2]))
    if width > MAX_GRASP_WIDTH:
        raise ConfigError(f"{sec.source}: object {name!r}: narrowest side {width * 100:.1f} cm does not fit "
                          f"the gripper (expected <= {MAX_GRASP_WIDTH * 100:.1f} cm)")
    return spec


def load_object_set(name_or_path: str | Path) -> ObjectSet:
    """Load an object set by name (``seen``, ``unseen``) or from a YAML path."""
    path = resolve(name_or_path, "objects")
    root = Section(load_yaml(path), path)
    root.unknown_keys({"name", "description", "objects"})
    items = root.list("objects")
    if not items:
        raise ConfigError(f"{path}: key 'objects': expected a non-empty list")
    grasps = load_grasps()
    objects = []
    for i, item in enumerate(items):
        if not isinstance(item, dict):
            raise ConfigError(f"{path}: key 'objects[{i}]': expected a mapping, found {item!r}")
        objects.append(_parse_object(Section(item, path, f"objects[{i}]"), grasps))
    names = [o.name for o in objects]
    dup = {n for n in names if names.count(n) > 1}
    if dup:
        raise ConfigError(f"{path}: duplicate object names {sorted(dup)}")
    return ObjectSet(root.string("name", default=path.stem), str(path), tuple(objects))


def load_objects(spec: str) -> list[tuple[ObjectSet, ObjectSpec]]:
    """Objects from a CLI ``--objects`` value: comma-separated set names or YAML paths."""
    out = []
    for part in [s.strip() for s in spec.split(",") if s.strip()]:
        oset = load_object_set(part)
        out.extend((oset, o) for o in oset.objects)
    if not out:
        raise ConfigError(f"--objects: expected set names or YAML paths, found {spec!r}")
    return out
