"""Generated object meshes: tetrahedral ``.vtk`` volumes for soft bodies, ``.obj`` shapes.

``python -m app.sim.softmesh`` (re)writes every file of :data:`MESHES` into
``config/objects/meshes/``; the files are committed, so nothing is generated at run time.

* Soft bodies: PyBullet's VTK reader takes a legacy ASCII ``UNSTRUCTURED_GRID`` with one point
  per line after ``POINTS`` and one ``4 a b c d`` tetrahedron per line after ``CELLS``
  (``pybullet_data`` ships none). A box is split into cells and each cell into six tetrahedra
  along its main diagonal (Freudenthal/Kuhn split: neighbouring cells share their face
  diagonals, so the mesh is conforming). Points are in metres, centred on the box centre.
* Prisms: a convex right prism over a polygon footprint (a cheese wedge), centred on its
  bounding box, with outward-facing triangles.
* Re-framed models: a ``pybullet_data`` model turned upright, centred on its bounding-box centre and
  scaled to a length in metres, so that its frame is where :class:`ObjectSpec` expects it (the
  geometric centre, resting on its base at half its height).
"""

from __future__ import annotations

import itertools
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from app import CONFIG_DIR
from app.transforms import rot_x

MESH_DIR = CONFIG_DIR / "objects" / "meshes"

# The six tetrahedra of a unit cube along its 0-7 diagonal (corner index = x + 2y + 4z): each
# follows one monotone path 0 -> a -> b -> 7 through the cube's corners.
_CUBE_TETS = [(0, a, a | b, 7) for a, b in itertools.permutations((1, 2, 4), 2)]


def box_tets(extents: tuple[float, float, float], cells: tuple[int, int, int]) -> tuple[np.ndarray, np.ndarray]:
    """A tetrahedral mesh of a box centred at the origin.

    Args:
        extents: Full size (x, y, z) of the box, metres.
        cells: Number of cells along x, y and z (each cell holds six tetrahedra).

    Returns:
        ``points`` (N, 3) in metres and ``tets`` (M, 4) point indices, every tetrahedron with a
        positive volume (right-handed order).
    """
    nx, ny, nz = cells
    axes = [np.linspace(-e / 2, e / 2, n + 1) for e, n in zip(extents, cells, strict=True)]
    gx, gy, gz = np.meshgrid(*axes, indexing="ij")
    points = np.stack([gx.ravel(), gy.ravel(), gz.ravel()], axis=1)

    def index(i: int, j: int, k: int) -> int:
        return (i * (ny + 1) + j) * (nz + 1) + k

    tets = []
    for i, j, k in itertools.product(range(nx), range(ny), range(nz)):
        corner = [index(i + (c & 1), j + ((c >> 1) & 1), k + ((c >> 2) & 1)) for c in range(8)]
        for tet in _CUBE_TETS:
            ids = [corner[c] for c in tet]
            a, b, c, d = points[ids]
            if np.dot(np.cross(b - a, c - a), d - a) < 0:  # make the volume positive
                ids[1], ids[2] = ids[2], ids[1]
            tets.append(ids)
    return points, np.array(tets, dtype=np.int64)


def tet_volumes(points: np.ndarray, tets: np.ndarray) -> np.ndarray:
    """Signed volume (m^3) of each tetrahedron."""
    a, b, c, d = (points[tets[:, i]] for i in range(4))
    return np.einsum("ij,ij->i", np.cross(b - a, c - a), d - a) / 6.0


def write_vtk(path: Path, points: np.ndarray, tets: np.ndarray, title: str) -> None:
    """Write a legacy ASCII VTK unstructured grid of tetrahedra (the layout PyBullet reads)."""
    lines = ["# vtk DataFile Version 2.0", title, "ASCII", "DATASET UNSTRUCTURED_GRID",
             f"POINTS {len(points)} double"]
    lines += [f"{x:.6f} {y:.6f} {z:.6f}" for x, y, z in points]
    lines.append(f"CELLS {len(tets)} {5 * len(tets)}")
    lines += ["4 " + " ".join(str(int(v)) for v in t) for t in tets]
    lines.append(f"CELL_TYPES {len(tets)}")
    lines += ["10"] * len(tets)  # VTK_TETRA
    path.write_text("\n".join(lines) + "\n", encoding="ascii")


def read_vtk_points(path: Path) -> np.ndarray:
    """The points (N, 3) of a VTK file written by :func:`write_vtk` (metres)."""
    lines = path.read_text(encoding="ascii").splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("POINTS"))
    n = int(lines[start].split()[1])
    return np.array([[float(v) for v in line.split()] for line in lines[start + 1:start + 1 + n]])


def reframe_obj(src: Path, dst: Path, rotation: np.ndarray, length: float) -> np.ndarray:
    """Copy a Wavefront OBJ, rotated, centred on its bounding box and scaled to ``length``.

    Keeps positions, normals, texture coordinates and faces; drops materials (the object colour
    comes from the appearance domain).

    Args:
        src: Source OBJ. dst: Output OBJ.
        rotation: (3, 3) rotation applied to positions and normals (source to object frame).
        length: Size (m) of the result along x.

    Returns:
        The full extents (x, y, z) of the result, metres.
    """
    text = src.read_text(encoding="utf-8", errors="replace").splitlines()
    verts = np.array([[float(v) for v in line.split()[1:4]] for line in text if line.startswith("v ")])
    verts = verts @ rotation.T
    lo, hi = verts.min(axis=0), verts.max(axis=0)
    scale = length / (hi[0] - lo[0])
    verts = (verts - (lo + hi) / 2) * scale
    out, vi = [f"# {src.name}, re-framed by app/sim/softmesh.py: upright, centred, {length} m long"], 0
    for line in text:
        if line.startswith("v "):
            out.append("v {:.6f} {:.6f} {:.6f}".format(*verts[vi]))
            vi += 1
        elif line.startswith("vn "):
            n = rotation @ np.array([float(v) for v in line.split()[1:4]])
            out.append("vn {:.5f} {:.5f} {:.5f}".format(*n))
        elif line.startswith(("vt ", "f ")):
            out.append(line)
    dst.write_text("\n".join(out) + "\n", encoding="utf-8")
    return (hi - lo) * scale


def write_prism_obj(path: Path, footprint: np.ndarray, height: float) -> np.ndarray:
    """Write a convex right prism as an OBJ, centred on its bounding box.

    Args:
        path: Output file.
        footprint: (K, 2) convex polygon (m) in the x-y plane, counter-clockwise.
        height: Prism height along z (m).

    Returns:
        The full extents (x, y, z), metres.
    """
    poly = np.asarray(footprint, dtype=float)
    poly = poly - (poly.min(axis=0) + poly.max(axis=0)) / 2
    k = len(poly)
    verts = [(x, y, -height / 2) for x, y in poly] + [(x, y, height / 2) for x, y in poly]
    faces = [(1, j + 1, j) for j in range(2, k)]  # bottom, seen from below: clockwise from above
    faces += [(k + 1, k + j, k + j + 1) for j in range(2, k)]  # top, counter-clockwise
    for j in range(k):  # sides
        a, b = j + 1, (j + 1) % k + 1
        faces += [(a, b, b + k), (a, b + k, a + k)]
    lines = [f"# {path.stem}: convex prism, {height} m tall, written by app/sim/softmesh.py"]
    lines += [f"v {x:.6f} {y:.6f} {z:.6f}" for x, y, z in verts]
    lines += [f"f {a} {b} {c}" for a, b, c in faces]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return np.array([*np.ptp(poly, axis=0), height])


@dataclass(frozen=True)
class Prism:
    """A convex prism: footprint polygon (m, counter-clockwise) and height (m)."""

    footprint: tuple[tuple[float, float], ...]
    height: float


@dataclass(frozen=True)
class SoftBox:
    """A soft box: full extents (m) and cells per axis."""

    extents: tuple[float, float, float]
    cells: tuple[int, int, int]


@dataclass(frozen=True)
class Reframed:
    """A ``pybullet_data`` OBJ turned upright: its file, a rotation and the length (m) along x."""

    source: str
    rotation: tuple[tuple[float, ...], ...]
    length: float


# Every generated file. Cells of ~1-1.3 cm: fine enough for the fingers to dent the surface,
# coarse enough for ~a few ms per physics step.
MESHES: dict[str, SoftBox | Prism | Reframed] = {
    "salmon_fillet.vtk": SoftBox((0.10, 0.04, 0.022), (8, 4, 2)),
    "sponge.vtk": SoftBox((0.09, 0.055, 0.03), (7, 4, 2)),
    # A cheese wedge lying on its side: an isosceles triangle 8 cm long, 5 cm at the rind.
    "cheese_wedge.obj": Prism(((-0.04, -0.025), (0.04, 0.0), (-0.04, 0.025)), 0.035),
    # pybullet_data's duck stands with its up axis along +y: a quarter turn about x stands it up.
    "duck.obj": Reframed("duck.obj", tuple(map(tuple, rot_x(np.pi / 2))), 0.07),
}


def generate(out_dir: Path = MESH_DIR) -> dict[str, np.ndarray]:
    """Write every mesh of :data:`MESHES` into ``out_dir``; returns each file's extents (m)."""
    import pybullet_data  # local: only the generator needs the source models

    out_dir.mkdir(parents=True, exist_ok=True)
    sizes = {}
    for name, spec in MESHES.items():
        path = out_dir / name
        if isinstance(spec, SoftBox):
            points, tets = box_tets(spec.extents, spec.cells)
            write_vtk(path, points, tets, f"{path.stem}: box {spec.extents} m, {len(tets)} tetrahedra")
            sizes[name] = np.ptp(points, axis=0)
        elif isinstance(spec, Prism):
            sizes[name] = write_prism_obj(path, np.array(spec.footprint), spec.height)
        else:
            src = Path(pybullet_data.getDataPath()) / spec.source
            sizes[name] = reframe_obj(src, path, np.array(spec.rotation), spec.length)
    return sizes


def main(argv: list[str] | None = None) -> int:
    """Regenerate the committed meshes and print their extents."""
    out = Path(argv[0]) if argv else MESH_DIR
    for name, ext in generate(out).items():
        print(f"{out / name}: extents {np.round(ext, 4).tolist()} m")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
