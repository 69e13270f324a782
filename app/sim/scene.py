"""Multi-object scenes: ``--scene single|multi:N`` (2 to 5 objects on the table at once).

Objects are drawn without replacement from the selected sets, placed around the start axis
without overlap (bounding circles of their footprints), and some are slid against their nearest
neighbour until their collision shapes are ``touch_gap`` apart, so scenes hold touching objects.
The placement depends only on the seed. Parameters: ``config/scenes.yaml``.

Scoring (:class:`SceneScore`) reads ground truth through :meth:`GroundTruth.world`, so it is
locked while a tree runs, as for single objects.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from app import CONFIG_DIR
from app.config import Section, load_yaml
from app.errors import ConfigError
from app.transforms import Pose, rot_z

if TYPE_CHECKING:
    from app.sim.objects import ObjectSpec
    from app.sim.session import SimSession

MIN_OBJECTS, MAX_OBJECTS = 2, 5  # objects in a multi-object scene (issue 13)
SETTLE_S = 0.5  # s of physics after placing the objects so they come to rest
_BISECTIONS = 12  # halvings of the slide towards a neighbour: 2^-12 of ~0.1 m is < 0.03 mm


@dataclass(frozen=True)
class SceneOption:
    """A parsed ``--scene`` value: ``single`` (one object, n = 1) or ``multi`` with n objects."""

    kind: str
    n: int

    def __str__(self) -> str:
        return "single" if self.kind == "single" else f"multi:{self.n}"

    @property
    def multi(self) -> bool:
        """Several objects at once."""
        return self.kind == "multi"


def parse_scene(value: str) -> SceneOption:
    """Parse ``single`` or ``multi:N`` (N in 2..5).

    Raises:
        ConfigError: One line naming the flag, the value and what was expected.
    """
    v = (value or "").strip()
    if v == "single":
        return SceneOption("single", 1)
    if v.startswith("multi:"):
        try:
            n = int(v.split(":", 1)[1])
        except ValueError:
            n = -1
        if MIN_OBJECTS <= n <= MAX_OBJECTS:
            return SceneOption("multi", n)
    raise ConfigError(f"--scene: expected 'single' or 'multi:N' with N in {MIN_OBJECTS}..{MAX_OBJECTS}, found {value!r}")


@dataclass(frozen=True)
class SceneConfig:
    """``config/scenes.yaml``: placement of multi-object scenes and what counts as off the table."""

    area_half_width: float
    touch_probability: float
    touch_gap: float
    max_placement_tries: int
    off_table_z: float
    table_half_extent: float
    source: str = ""


def load_scene_config(path: str | Path | None = None) -> SceneConfig:
    """Load and validate ``config/scenes.yaml`` (or ``path``)."""
    path = Path(path) if path else CONFIG_DIR / "scenes.yaml"
    root = Section(load_yaml(path), path)
    root.unknown_keys({"area_half_width", "touch_probability", "touch_gap", "max_placement_tries",
                       "off_table_z", "table_half_extent"})
    return SceneConfig(
        area_half_width=root.number("area_half_width", lo=0.0, hi=0.3),
        touch_probability=root.number("touch_probability", lo=0.0, hi=1.0),
        touch_gap=root.number("touch_gap", lo=0.0, hi=0.02),
        max_placement_tries=root.integer("max_placement_tries", lo=1, hi=100_000),
        off_table_z=root.number("off_table_z", lo=-1.0, hi=0.0),
        table_half_extent=root.number("table_half_extent", lo=0.1, hi=5.0),
        source=str(path),
    )


@dataclass(frozen=True)
class SceneObject:
    """One object of a built scene: its body id, spec and resting height (ground truth)."""

    body: int
    spec: ObjectSpec
    rest_z: float


def footprint_radius(spec: ObjectSpec) -> float:
    """Radius (m) of the circle that encloses the object's footprint at any yaw."""
    ext = spec.extents
    return 0.5 * float(np.hypot(ext[0], ext[1]))


def draw_objects(pool: list[ObjectSpec], n: int, rng: np.random.Generator) -> list[ObjectSpec]:
    """``n`` distinct rigid objects from ``pool`` (soft ones excluded), in drawn order.

    Raises:
        ConfigError: When the pool holds fewer than ``n`` rigid objects.
    """
    rigid = [o for o in pool if o.shape != "soft"]
    if len(rigid) < n:
        raise ConfigError(f"--scene multi:{n}: the selected sets hold only {len(rigid)} rigid objects")
    idx = rng.choice(len(rigid), size=n, replace=False)
    return [rigid[int(i)] for i in idx]


def sample_layout(specs: list[ObjectSpec], centre: np.ndarray, cfg: SceneConfig,
                  rng: np.random.Generator) -> list[Pose]:
    """Object poses (resting height, random yaw) whose footprint circles do not overlap.

    Args:
        specs: The objects, in placement order.
        centre: (x, y) of the square of object centres (the start axis), base frame, m.
        cfg: Area and number of tries.
        rng: Random source (the scene's seed).

    Raises:
        ConfigError: When an object finds no free place in ``max_placement_tries`` tries.
    """
    placed: list[tuple[np.ndarray, float]] = []
    poses = []
    a = cfg.area_half_width
    for spec in specs:
        r = footprint_radius(spec)
        for _ in range(cfg.max_placement_tries):
            xy = centre + rng.uniform(-a, a, 2)
            if all(np.hypot(*(xy - q)) >= r + rq for q, rq in placed):
                break
        else:
            raise ConfigError(f"{cfg.source}: no free place for {spec.name!r} after {cfg.max_placement_tries} tries "
                              f"(area_half_width {a} m is too small for {len(specs)} objects)")
        placed.append((xy, r))
        yaw = rng.uniform(-np.pi, np.pi)
        poses.append(Pose(np.array([xy[0], xy[1], spec.rest_height + 0.002]), rot_z(yaw)))  # 2 mm drop
    return poses


def _slide_into_contact(session: SimSession, body: int, others: list[int], gap: float) -> bool:
    """Slide ``body`` along the line towards its nearest neighbour until the collision shapes are
    ``gap`` apart, touching no third body. Returns whether it moved."""
    w = session.world
    start = w.body_pose(body)
    centres = {o: w.body_pose(o).position for o in others}
    target = min(others, key=lambda o: float(np.hypot(*(centres[o][:2] - start.position[:2]))))
    step = np.zeros(3)
    step[:2] = centres[target][:2] - start.position[:2]

    def at(t: float) -> float:
        w.set_body_pose(body, Pose(start.position + t * step, start.matrix))
        return w.bodies_distance(body, target)

    lo, hi = 0.0, 1.0  # fraction of the centre-to-centre line; at 1 the shapes overlap
    if at(lo) <= gap:
        w.set_body_pose(body, start)
        return False
    for _ in range(_BISECTIONS):
        mid = 0.5 * (lo + hi)
        if at(mid) > gap:
            lo = mid
        else:
            hi = mid
    at(lo)
    if any(w.bodies_distance(body, o) <= 0.0 for o in others if o != target):
        w.set_body_pose(body, start)  # the slide would push into a third object: keep it apart
        return False
    return True


def build_scene(session: SimSession, specs: list[ObjectSpec], seed: int,
                cfg: SceneConfig | None = None) -> list[SceneObject]:
    """Reset the session and put ``specs`` on the table (placement from ``seed`` only), built as
    the session's physical gap draws them (mass, friction, size, table height; ``none``: as designed).

    The first object goes through :meth:`SimSession.reset` (so the arm is at the start pose, the
    gripper open); the others are added beside it; some are slid into contact; then physics
    settles the scene and the camera applies the domain's looks.

    Returns:
        The scene's objects with their resting heights (ground truth: scoring only).
    """
    cfg = cfg or load_scene_config()
    rng = np.random.default_rng(seed)
    built = [session.gap.scale_object(spec) for spec in specs]  # the objects as built (the episode's physical gap)
    poses = sample_layout(built, np.asarray(session.hw.start_position[:2], float), cfg, rng)
    up = np.array([0.0, 0.0, session.gap.table_dz])  # the layout rests on z = 0; the gap may move the table
    poses = [Pose(pose.position + up, pose.matrix) for pose in poses]
    session.reset(specs[0], poses[0], settle=False)  # reset builds the first object as drawn itself
    w = session.world
    bodies = [w.object_id]
    for spec, pose in zip(built[1:], poses[1:], strict=True):
        body = w.spawn_rigid(spec.shape, list(spec.size), spec.mass, spec.friction,
                             session.domain.object_rgba(spec.color), pose,
                             mesh_path=spec.asset_path if spec.shape == "mesh" else None,
                             urdf=spec.asset if spec.shape == "urdf" else None, scale=spec.scale, extra=True)
        w.extra_objects[body] = spec.color
        bodies.append(body)
    for k in range(1, len(bodies)):
        if rng.uniform() < cfg.touch_probability:
            _slide_into_contact(session, bodies[k], bodies[:k] + bodies[k + 1:], cfg.touch_gap)
    for _ in range(round(SETTLE_S / session.clock.period)):
        session.clock.advance()
    session.camera.apply_domain(session.domain)
    return [SceneObject(b, s, float(w.body_pose(b).position[2])) for b, s in zip(bodies, specs, strict=True)]


class SceneScore:
    """Ground-truth state of a scene's objects, for scoring (locked while a tree runs)."""

    def __init__(self, session: SimSession, objects: list[SceneObject], cfg: SceneConfig | None = None) -> None:
        self.session, self.objects, self.cfg = session, objects, cfg or load_scene_config()

    def lifted(self, min_lift: float) -> list[str]:
        """Names of the objects at least ``min_lift`` m above their rest height (held or not)."""
        w = self.session.truth.world()
        return [o.spec.name for o in self.objects if w.body_pose(o.body).position[2] - o.rest_z >= min_lift]

    def held(self) -> list[str]:
        """Names of the objects touching both fingers."""
        w = self.session.truth.world()
        return [o.spec.name for o in self.objects if all(w.finger_contacts(o.body))]

    def off_table(self) -> list[str]:
        """Names of the objects that fell off the table (below ``off_table_z`` or beyond its edge)."""
        w = self.session.truth.world()
        out = []
        for o in self.objects:
            pos = w.body_pose(o.body).position
            beyond = max(abs(pos[0] - 0.5), abs(pos[1])) > self.cfg.table_half_extent  # table centred at x 0.5
            if pos[2] < self.cfg.off_table_z or beyond:
                out.append(o.spec.name)
        return out

    def positions(self) -> dict[str, list[float]]:
        """Object name -> (x, y, z) in the base frame (m)."""
        w = self.session.truth.world()
        return {o.spec.name: [round(float(v), 4) for v in w.body_pose(o.body).position] for o in self.objects}

    def nearest(self, xy: np.ndarray) -> SceneObject:
        """The object whose centre is horizontally nearest ``xy`` (base frame)."""
        w = self.session.truth.world()
        return min(self.objects, key=lambda o: float(np.hypot(*(w.body_pose(o.body).position[:2] - xy))))
