"""Semi-compliant objects as articulated rigid bodies: generated URDFs and their springs.

PyBullet's FEM soft bodies either let the fingers through or explode (README "Objects"), so a
compliant object stays in the rigid solver, as a multibody of rigid links (the Ravens cable
idea: rigid beads, bounded joints):

* ``chain`` (capsules and boxes: sausage, banana, salmon fillet): the object cut along its long
  axis (x) into ``segments`` rigid pieces, joined by revolute joints about the object's y axis
  (the horizontal axis across the long one), so it sags when lifted off centre and bends under
  the fingers. The middle segment is the base link, so the object's frame stays its geometric
  centre at rest. Capsule pieces are capsules of the full radius (their round ends overlap
  inside the neighbour); box pieces overlap their neighbours by :data:`BOX_OVERLAP` of a piece,
  so neither shows a gap or a seam at rest.
* ``pads`` (spheres and ellipsoids: peach, bread roll): a rigid core, narrower than the object
  by ``travel`` across its horizontal axes (full height, so it rests as the rigid object does),
  with ``segments`` spring-loaded pads around its equator on radial prismatic joints: a finger
  pushes a pad up to ``travel`` into the core (the object dents). The core draws the full
  object; a pad draws only a speck hidden inside the core (TinyRenderer would otherwise draw
  its collision box), so the object looks exactly like its rigid version.

Every joint carries a spring (``stiffness``: N·m/rad for chains, N/m for pads) and a damper
(``damping``: N·m·s/rad or N·s/m) towards its rest position, applied as a joint torque (force)
before every physics step by :class:`app.sim.pybullet_world.PyBulletWorld`. The spring is
integrated implicitly (:meth:`Springs.forces`), so stiff springs on light links stay stable at
the 1/240 s time step. Joint limits (``max_bend_deg``, ``travel``) bound every deflection.

The URDFs are generated into ``config/objects/compliant/`` by ``python -m app compliant``
(:func:`main`); nothing is downloaded. Each file records a digest of the parameters it was made
from, and loading refuses a stale file (run the command again). This module does not import
pybullet (the world does).
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from app import CONFIG_DIR
from app.errors import ConfigError
from app.sim.objects import ObjectSpec, kind_of

URDF_DIR = CONFIG_DIR / "objects" / "compliant"
BOX_OVERLAP = 0.15  # fraction of a box piece it overlaps each neighbour (hides the joint line)
CORE_MASS_FRACTION = 0.7  # of a padded object's mass in its core; the pads share the rest
PAD_THICKNESS = 0.012  # m, radial size of a pad (more than any travel: the pad never leaves the core)
PAD_HEIGHT_FRACTION = 0.6  # of the object's height covered by a pad, centred on the equator
PAD_WIDTH_FRACTION = 0.9  # of the arc between pad centres a pad spans (gaps keep them apart)
CHAIN_INERTIA_MARGIN = 0.5  # the spring's inertia estimate is half the lightest piece's (see _chain)
SPECK_RADIUS = 0.001  # m, the pad's visual: a 1 mm sphere inside the core
DIGEST_TAG = "simgrasp-compliance-digest"  # the URDF comment that records the parameters


@dataclass(frozen=True)
class Link:
    """One generated link: its frame relative to the parent's, its geometry and inertia."""

    name: str
    parent: int  # index of the parent link, -1 for the base
    joint_xyz: tuple[float, float, float]  # joint frame in the parent link's frame (m)
    joint_rpy: tuple[float, float, float]  # rad
    joint_type: str  # "revolute" (about y) or "prismatic" (along x), "" for the base
    lower: float
    upper: float
    geom_xyz: tuple[float, float, float]  # geometry centre in this link's frame (m)
    collision: str  # URDF geometry element
    visual: str
    mass: float
    inertia: tuple[float, float, float]  # ixx, iyy, izz about the geometry centre (kg·m²)
    reduced_inertia: float  # kg·m² (chain) or kg (pads) the joint's spring acts on


@dataclass(frozen=True)
class Model:
    """A generated articulated object."""

    name: str
    kind: str
    links: tuple[Link, ...]
    digest: str
    meshes: tuple[tuple[str, str], ...] = ()  # (file name, OBJ text) written beside the URDF

    @property
    def joints(self) -> int:
        """Number of joints (links other than the base)."""
        return len(self.links) - 1


def _box_inertia(m: float, sx: float, sy: float, sz: float) -> tuple[float, float, float]:
    return (m * (sy * sy + sz * sz) / 12, m * (sx * sx + sz * sz) / 12, m * (sx * sx + sy * sy) / 12)


def digest(spec: ObjectSpec) -> str:
    """Short hash of everything the URDF of ``spec`` is made from."""
    assert spec.compliance is not None
    data = {"shape": spec.shape, "size": list(spec.size), "mass": spec.mass, "compliance": asdict(spec.compliance),
            "version": 1}
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:16]


def _chain(spec: ObjectSpec) -> list[Link]:
    """Pieces along x, the middle one the base; joints about y at the piece boundaries."""
    c = spec.compliance
    assert c is not None
    n = c.segments
    ex, ey, ez = (float(v) for v in spec.extents)
    capsule = spec.shape == "capsule"
    r = float(spec.size[0]) if capsule else 0.0
    inner = ex - 2 * r  # capsules: the cylinder part is cut; the end caps stay on the end pieces
    bounds = [-inner / 2 + inner * i / n for i in range(n + 1)]  # piece boundaries along x
    piece = inner / n
    ov = 0.0 if capsule else BOX_OVERLAP * piece
    m = spec.mass / n
    spans = []
    for i in range(n):  # each piece's extent along x (boxes reach into their neighbours)
        lo = bounds[i] - (ov if i > 0 else 0.0)
        hi = bounds[i + 1] + (ov if i < n - 1 else 0.0)
        spans.append((lo, hi))
    centres = [(lo + hi) / 2 for lo, hi in spans]
    k = n // 2
    links: list[Link] = []

    def geometry(i: int) -> tuple[str, tuple[float, float, float]]:
        lo, hi = spans[i]
        if capsule:
            g = f'<capsule radius="{r:.6f}" length="{hi - lo:.6f}"/>'
            return g, (hi - lo + 2 * r, 2 * r, 2 * r)
        return f'<box size="{hi - lo:.6f} {ey:.6f} {ez:.6f}"/>', (hi - lo, ey, ez)

    def visual(i: int) -> str:
        if capsule:  # a smooth mesh piece (see capsule_piece_obj), written beside the URDF
            return f'<mesh filename="{spec.name}_piece{i}.obj" scale="1 1 1"/>'
        return geometry(i)[0]

    # The inertia a joint's spring acts on: a lower bound (the lightest piece about its own
    # centre, halved), since free pieces also translate and the articulated inertia of a joint
    # falls below any one side's moment about it. Too high an estimate destabilises the damper.
    lightest = min(_box_inertia(m, *geometry(i)[1])[1] for i in range(n)) * CHAIN_INERTIA_MARGIN

    order = [k] + [i for d in range(1, k + 1) for i in (k + d, k - d)]  # base first, then outwards
    index = {i: j for j, i in enumerate(order)}
    for i in order:
        g, dims = geometry(i)
        inertia = _box_inertia(m, *dims)
        if i == k:
            links.append(Link(f"piece{i}", -1, (0, 0, 0), (0, 0, 0), "", 0, 0, (centres[i], 0, 0), g, visual(i),
                              m, inertia, 0.0))
            continue
        outward = i > k
        parent = i - 1 if outward else i + 1
        pivot = bounds[i] if outward else bounds[i + 1]
        parent_origin = 0.0 if parent == k else (bounds[parent] if outward else bounds[parent + 1])
        limit = math.radians(c.max_bend_deg)
        links.append(Link(f"piece{i}", index[parent], (pivot - parent_origin, 0, 0), (0, 0, 0), "revolute",
                          -limit, limit, (centres[i] - pivot, 0, 0), g, visual(i), m, inertia, lightest))
    return links


def _ellipse_radius(a: float, b: float, theta: float) -> float:
    return a * b / math.hypot(b * math.cos(theta), a * math.sin(theta))


def _pads(spec: ObjectSpec) -> list[Link]:
    """A core narrower by ``travel`` across x and y, pads on radial prismatic joints."""
    c = spec.compliance
    assert c is not None
    a, b, h = (float(v) / 2 for v in spec.extents)  # semi-axes (m)
    mesh = (URDF_DIR / "unit_sphere.obj").name
    core_col = f'<mesh filename="{mesh}" scale="{a - c.travel:.6f} {b - c.travel:.6f} {h:.6f}"/>'
    if spec.shape == "sphere":
        core_vis = f'<sphere radius="{a:.6f}"/>'
    else:
        core_vis = f'<mesh filename="{mesh}" scale="{a:.6f} {b:.6f} {h:.6f}"/>'
    m_core = spec.mass * CORE_MASS_FRACTION
    m_pad = spec.mass * (1 - CORE_MASS_FRACTION) / c.segments
    core_i = tuple(m_core * v for v in ((b * b + h * h) / 5, (a * a + h * h) / 5, (a * a + b * b) / 5))
    links = [Link("core", -1, (0, 0, 0), (0, 0, 0), "", 0, 0, (0, 0, 0), core_col, core_vis, m_core, core_i, 0.0)]
    height = 2 * h * PAD_HEIGHT_FRACTION
    for j in range(c.segments):
        theta = 2 * math.pi * j / c.segments
        rho = _ellipse_radius(a, b, theta)
        width = 2 * rho * math.sin(math.pi / c.segments) * PAD_WIDTH_FRACTION
        box = f'<box size="{PAD_THICKNESS:.6f} {width:.6f} {height:.6f}"/>'
        speck = f'<sphere radius="{SPECK_RADIUS:.6f}"/>'
        links.append(Link(f"pad{j}", 0, (0, 0, 0), (0, 0, theta), "prismatic", -c.travel, 0.0,
                          (rho - PAD_THICKNESS / 2, 0, 0), box, speck, m_pad,
                          _box_inertia(m_pad, PAD_THICKNESS, width, height), m_pad))
    return links


def build_model(spec: ObjectSpec) -> Model:
    """The articulated model of a compliant ``spec`` (pure geometry, no files)."""
    if spec.compliance is None:
        raise ConfigError(f"object {spec.name!r} has no compliance")
    kind = kind_of(spec.shape)
    links = _chain(spec) if kind == "chain" else _pads(spec)
    meshes: list[tuple[str, str]] = []
    if spec.shape == "capsule":
        c = spec.compliance
        r = float(spec.size[0])
        inner = float(spec.extents[0]) - 2 * r
        piece = inner / c.segments
        meshes = [(f"{spec.name}_piece{i}.obj",
                   capsule_piece_obj(-piece / 2, piece / 2, r, i == 0, i == c.segments - 1))
                  for i in range(c.segments)]
    return Model(spec.name, kind, tuple(links), digest(spec), tuple(meshes))


def _f(v: Sequence[float]) -> str:
    return " ".join(f"{x:.6f}" for x in v)


def urdf_text(model: Model) -> str:
    """The URDF of ``model`` (no materials: the world colours every link)."""
    out = ['<?xml version="1.0"?>', f"<!-- {DIGEST_TAG}: {model.digest} -->",
           "<!-- generated by `python -m app compliant` (app/sim/compliant.py): do not edit -->",
           f'<robot name="{model.name}">']
    rot = ' rpy="0 1.570796 0"'  # URDF capsules lie along z: turn them onto the link's x axis
    for link in model.links:
        ixx, iyy, izz = link.inertia
        col_rot = rot if "<capsule" in link.collision else ""
        vis_rot = rot if "<capsule" in link.visual else ""
        vis_xyz = link.geom_xyz if link.joint_type != "prismatic" else (link.geom_xyz[0] - PAD_THICKNESS, 0, 0)
        out += [f'  <link name="{link.name}">',
                f'    <inertial><origin xyz="{_f(link.geom_xyz)}"/><mass value="{link.mass:.6f}"/>'
                f'<inertia ixx="{ixx:.3e}" ixy="0" ixz="0" iyy="{iyy:.3e}" iyz="0" izz="{izz:.3e}"/></inertial>',
                f'    <visual><origin xyz="{_f(vis_xyz)}"{vis_rot}/><geometry>{link.visual}</geometry></visual>',
                f'    <collision><origin xyz="{_f(link.geom_xyz)}"{col_rot}/><geometry>{link.collision}</geometry>'
                "</collision>",
                "  </link>"]
    # effort 100 N·m / N: never binding (the springs set the torques); velocity 100 rad/s or m/s:
    # PyBullet clamps joint speeds there, above MAX_JOINT_SPEED, so the check still sees a runaway.
    for link in model.links[1:]:
        parent = model.links[link.parent].name
        axis = "0 1 0" if link.joint_type == "revolute" else "1 0 0"
        out += [f'  <joint name="{link.name}_joint" type="{link.joint_type}">',
                f'    <parent link="{parent}"/><child link="{link.name}"/>',
                f'    <origin xyz="{_f(link.joint_xyz)}" rpy="{_f(link.joint_rpy)}"/><axis xyz="{axis}"/>',
                f'    <limit lower="{link.lower:.6f}" upper="{link.upper:.6f}" effort="100" velocity="100"/>',
                '    <dynamics damping="0" friction="0"/>',
                "  </joint>"]
    out.append("</robot>")
    return "\n".join(out) + "\n"


def unit_sphere_obj(n_lat: int = 10, n_lon: int = 16) -> str:
    """A unit sphere as a Wavefront OBJ: the one mesh the world draws rigid ellipsoids with and
    the compliant pads' cores use, so a padded ellipsoid looks exactly like its rigid version.

    Args:
        n_lat: Latitude bands (10: enough facets for a smooth silhouette at 128 px).
        n_lon: Longitude segments.
    """
    verts = [(0.0, 0.0, 1.0)]
    for i in range(1, n_lat):
        th = np.pi * i / n_lat
        for j in range(n_lon):
            ph = 2 * np.pi * j / n_lon
            verts.append((np.sin(th) * np.cos(ph), np.sin(th) * np.sin(ph), np.cos(th)))
    verts.append((0.0, 0.0, -1.0))
    lines = [f"v {x:.6f} {y:.6f} {z:.6f}" for x, y, z in verts]
    for j in range(n_lon):
        lines.append(f"f 1 {2 + (j + 1) % n_lon} {2 + j}")
    for i in range(n_lat - 2):
        for j in range(n_lon):
            a, b = 2 + i * n_lon + j, 2 + i * n_lon + (j + 1) % n_lon
            lines.append(f"f {a} {b} {b + n_lon}")
            lines.append(f"f {a} {b + n_lon} {a + n_lon}")
    last = len(verts)
    base = 2 + (n_lat - 2) * n_lon
    for j in range(n_lon):
        lines.append(f"f {base + j} {base + (j + 1) % n_lon} {last}")
    return "\n".join(lines) + "\n"


CAPSULE_AROUND = 24  # facets around a capsule piece's mesh (a smooth silhouette at 128 px)
CAPSULE_CAP_RINGS = 6  # rings over a hemispherical end


def capsule_piece_obj(lo: float, hi: float, radius: float, cap_lo: bool, cap_hi: bool) -> str:
    """The visual mesh of one capsule piece, along x from ``lo`` to ``hi`` (m, about its centre).

    A cylinder section with smooth (radial) normals, closed by a hemisphere only at the
    object's ends: neighbouring pieces share their boundary rings, so at rest the pieces draw
    one smooth capsule without a seam (PyBullet's own capsule visuals would show each piece's
    round ends as bumps).
    """
    profile: list[tuple[float, float, float, float]] = []  # (x, ring radius, normal x, normal radial)
    if cap_lo:
        for k in range(CAPSULE_CAP_RINGS, 0, -1):
            phi = math.pi / 2 * k / CAPSULE_CAP_RINGS
            profile.append((lo - radius * math.sin(phi), radius * math.cos(phi), -math.sin(phi), math.cos(phi)))
    profile += [(lo, radius, 0.0, 1.0), (hi, radius, 0.0, 1.0)]
    if cap_hi:
        for k in range(1, CAPSULE_CAP_RINGS + 1):
            phi = math.pi / 2 * k / CAPSULE_CAP_RINGS
            profile.append((hi + radius * math.sin(phi), radius * math.cos(phi), math.sin(phi), math.cos(phi)))
    n = CAPSULE_AROUND
    lines = ["# capsule piece, generated by `python -m app compliant`"]
    for x, rr, nx, nr in profile:
        for j in range(n):
            th = 2 * math.pi * j / n
            c, s_ = math.cos(th), math.sin(th)
            lines.append(f"v {x:.6f} {rr * c:.6f} {rr * s_:.6f}")
            lines.append(f"vn {nx:.6f} {nr * c:.6f} {nr * s_:.6f}")
    for i in range(len(profile) - 1):
        for j in range(n):
            a, b = i * n + j + 1, i * n + (j + 1) % n + 1
            c2, d = a + n, b + n
            lines.append(f"f {a}//{a} {b}//{b} {d}//{d}")  # outward: (along the ring) x (along x)
            lines.append(f"f {a}//{a} {d}//{d} {c2}//{c2}")
    return "\n".join(lines) + "\n"


def urdf_path(spec: ObjectSpec) -> Path:
    """Where the URDF of ``spec`` lives."""
    return URDF_DIR / f"{spec.name}.urdf"


def checked_urdf(spec: ObjectSpec) -> str:
    """Path of the generated URDF of ``spec``, refusing a missing or stale one.

    Raises:
        ConfigError: The file is missing or was made from other parameters.
    """
    path = urdf_path(spec)
    if not path.is_file():
        raise ConfigError(f"{path}: missing (generate it with `python -m app compliant`)")
    head = path.read_text(encoding="utf-8")[:400]
    want = digest(spec)
    if f"{DIGEST_TAG}: {want}" not in head:
        raise ConfigError(f"{path}: made from other parameters than object {spec.name!r} has now "
                          "(regenerate it with `python -m app compliant`)")
    return str(path)


def write_urdfs(specs: Sequence[ObjectSpec], out_dir: Path = URDF_DIR) -> list[Path]:
    """Write the URDF of every compliant spec (and the shared sphere mesh) into ``out_dir``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "unit_sphere.obj").write_text(unit_sphere_obj(), encoding="utf-8")
    written = []
    for spec in specs:
        if spec.compliance is None:
            continue
        model = build_model(spec)
        for name, text in model.meshes:
            (out_dir / name).write_text(text, encoding="utf-8")
        path = out_dir / f"{spec.name}.urdf"
        path.write_text(urdf_text(model), encoding="utf-8")
        written.append(path)
    return written


# ------------------------------------------------------------------------------ springs
@dataclass(frozen=True)
class Springs:
    """The joint springs of one spawned object, integrated implicitly.

    Attributes:
        stiffness: (J,) N·m/rad or N/m. damping: (J,) N·m·s/rad or N·s/m.
        inertia: (J,) the reduced inertia (kg·m²) or mass (kg) each joint moves.
        lower, upper: (J,) joint limits (rad or m).
        revolute: Whether the joints turn (chain) or slide (pads).
        names: (J,) URDF joint names, in this order.
    """

    stiffness: np.ndarray
    damping: np.ndarray
    inertia: np.ndarray
    lower: np.ndarray
    upper: np.ndarray
    revolute: bool
    names: tuple[str, ...] = ()

    def reordered(self, names: Sequence[str]) -> Springs:
        """The same springs in the joint order ``names`` (the simulator's joint indices).

        Raises:
            ConfigError: ``names`` are not this object's joints.
        """
        if sorted(names) != sorted(self.names):
            raise ConfigError(f"URDF joints {list(names)} differ from the model's {list(self.names)} "
                              "(regenerate with `python -m app compliant`)")
        idx = [self.names.index(n) for n in names]
        return Springs(self.stiffness[idx], self.damping[idx], self.inertia[idx], self.lower[idx],
                       self.upper[idx], self.revolute, tuple(names))

    @staticmethod
    def of(model: Model, spec: ObjectSpec) -> Springs:
        """The springs of ``model`` with the parameters of ``spec``."""
        c = spec.compliance
        assert c is not None
        joints = model.links[1:]
        n = len(joints)
        return Springs(np.full(n, c.stiffness), np.full(n, c.damping),
                       np.array([j.reduced_inertia for j in joints]), np.array([j.lower for j in joints]),
                       np.array([j.upper for j in joints]), model.kind == "chain",
                       tuple(f"{j.name}_joint" for j in joints))

    def forces(self, q: np.ndarray, v: np.ndarray, dt: float) -> np.ndarray:
        """Joint torques (N·m) or forces (N) towards rest for the next step of ``dt`` seconds.

        Backward Euler on one joint of inertia ``I``: the force that makes
        ``v' = v + dt·f/I`` satisfy ``f = -k·(q + dt·v') - c·v'``, i.e.
        ``f = -(k·(q + dt·v) + c·v) / (1 + dt·c/I + dt²·k/I)``: unconditionally stable for
        the joint alone, where the explicit ``-k·q - c·v`` diverges once ``dt·sqrt(k/I)``
        nears 2.
        """
        k, c, m = self.stiffness, self.damping, self.inertia
        return -(k * (q + dt * v) + c * v) / (1 + dt * c / m + dt * dt * k / m)


# Instability limits, checked by the world while a compliant object is in it.
MAX_JOINT_SPEED = {True: 60.0, False: 3.0}  # rad/s (chain) or m/s (pads): far above any grasp
# rad / m beyond a joint limit (PyBullet's limits are soft: a 30 N pinch across a chain joint bent
# a banana joint 10.4 deg past its stop, a finger pushes a pad a few mm past it; a whole pad
# thickness past it, the pad would leave the core)
LIMIT_SLACK = {True: math.radians(25.0), False: PAD_THICKNESS}
MAX_LINK_SPEED = 3.0  # m/s of any link: the arm moves at < 0.5 m/s, a drop from 0.3 m is 2.4 m/s


def instability(springs: Springs, q: np.ndarray, v: np.ndarray) -> str:
    """Why the joint state is unstable ("" when it is not), in words."""
    if not (np.all(np.isfinite(q)) and np.all(np.isfinite(v))):
        return "non-finite joint state (the simulation diverged)"
    unit = "rad/s" if springs.revolute else "m/s"
    fast = np.abs(v) > MAX_JOINT_SPEED[springs.revolute]
    if fast.any():
        j = int(np.argmax(np.abs(v)))
        return (f"joint {j} moving at {abs(v[j]):.1f} {unit} (> {MAX_JOINT_SPEED[springs.revolute]:g}): "
                "energy growing")
    slack = LIMIT_SLACK[springs.revolute]
    out = (q < springs.lower - slack) | (q > springs.upper + slack)
    if out.any():
        j = int(np.argmax(out))
        return f"joint {j} at {q[j]:.3f} beyond its limits [{springs.lower[j]:.3f}, {springs.upper[j]:.3f}]: " \
               "a segment flying off"
    return ""
