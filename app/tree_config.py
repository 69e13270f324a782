"""Tree variants as data: ``config/trees/*.yaml`` parsed and checked into a :class:`TreeConfig`.

The builders that turn a config into a behaviour tree are in :mod:`app.trees` (grasp and oracle
trees) and :mod:`app.clearing` (the ``clear_table`` tree); both read this module, neither is
read by it.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from app import CONFIG_DIR
from app.config import Section, load_yaml, resolve
from app.controllers.features import FIRST_BLOB_RULES
from app.controllers.vs import VSParams, load_vs_params
from app.errors import ConfigError
from behaviours.perception import SEGMENTATION_MODES
from behaviours.recovery import ReacquireParams, RegraspParams

if TYPE_CHECKING:
    from app.controllers.depth_gate import DepthGateParams


@dataclass(frozen=True)
class TreeConfig:
    """A tree variant (``config/trees/NAME.yaml``)."""

    name: str
    path: str
    description: str
    builder: str  # "grasp" or "oracle"
    adapt: bool
    pose_steps: int
    last_step_z: str  # "agent" or "zero"
    visual_servoing: bool
    vs: VSParams
    lift_height: float
    hold_ticks: int
    max_ticks: int
    standoff: float
    max_reflex_recoveries: int = 1
    max_missed_frames: int = 15  # ticks a missed (dropped, stale, timed-out) frame may be held
    segmentation: str = "adapted"  # VS mask: "adapted" (D_X, the paper), "raw" (D_Y), "adapted_or_raw",
    #                                "adapted_or_raw_or_depth" (behaviours.perception.find_object)
    first_blob: str = "largest"  # which blob a VS track starts on: "largest" or "nearest_centre"
    depth_gate: DepthGateParams | None = None  # object pixels must stand above the table plane
    clear: ClearParams | None = None  # the ``clear`` section of a clear_table tree (app/clearing.py)
    settle_correction: bool = False  # final approach moves correct the arm's rest error once (behaviours/motion.py)
    regrasp: RegraspParams = RegraspParams(max_attempts=1)  # 1: no re-grasp (the paper)
    reacquire: ReacquireParams | None = None  # None: a lost object fails the VS iteration (the paper)

    @property
    def uses_models(self) -> bool:
        """Whether the tree needs the learned models."""
        return self.builder in ("grasp", "clear_table") and (self.pose_steps > 0 or self.visual_servoing)


def load_tree_config(name_or_path: str) -> TreeConfig:
    """Load a tree variant by name or path."""
    path = resolve(name_or_path, "trees")
    root = Section(load_yaml(path), path)
    root.unknown_keys({"name", "description", "builder", "adapt", "pose_steps", "last_step_z",
                       "visual_servoing", "vs", "lift_height", "hold_ticks", "max_ticks", "standoff",
                       "max_reflex_recoveries", "max_missed_frames", "segmentation", "first_blob",
                       "depth_gate", "clear", "settle_correction", "regrasp", "reacquire", "vs_overrides"})
    builder = root.string("builder", choices=["grasp", "oracle", "clear_table"])
    vs_file = root.string("vs", default="vs.yaml")
    vs_path = Path(vs_file) if "/" in vs_file else CONFIG_DIR / vs_file
    if not vs_path.is_file():
        raise ConfigError(f"{path}: key 'vs': file {vs_file!r} not found")
    grasp = builder in ("grasp", "clear_table")
    cfg = TreeConfig(
        name=root.string("name", default=path.stem), path=str(path),
        description=root.string("description", default=""), builder=builder,
        adapt=root.boolean("adapt") if grasp else False,
        pose_steps=root.integer("pose_steps", lo=0, hi=10) if grasp else 0,
        last_step_z=root.string("last_step_z", choices=["agent", "zero"]) if grasp else "zero",
        visual_servoing=root.boolean("visual_servoing") if grasp else False,
        vs=load_vs_params(vs_path, _vs_overrides(root), str(path)),
        lift_height=root.number("lift_height", lo=0.0, hi=0.3),
        hold_ticks=root.integer("hold_ticks", lo=0, hi=10_000),
        max_ticks=root.integer("max_ticks", lo=1, hi=1_000_000),
        standoff=root.number("standoff", default=0.10, lo=0.0, hi=0.4),
        max_reflex_recoveries=root.integer("max_reflex_recoveries", default=1, lo=0, hi=100),
        max_missed_frames=root.integer("max_missed_frames", default=15, lo=0, hi=10_000),  # 0.5 s at 30 fps
        segmentation=root.string("segmentation", default="adapted", choices=list(SEGMENTATION_MODES)),
        first_blob=root.string("first_blob", default="largest", choices=list(FIRST_BLOB_RULES)),
        depth_gate=load_depth_gate(root),
        clear=load_clear_params(root) if builder == "clear_table" else None,
        settle_correction=root.boolean("settle_correction", default=False),
    )
    if "regrasp" in root.data:
        r = root.section("regrasp")
        r.unknown_keys({"max_attempts", "back_off"})
        cfg = replace(cfg, regrasp=RegraspParams(max_attempts=r.integer("max_attempts", lo=1, hi=10),
                                                 back_off=r.number("back_off", default=0.08, lo=0.0, hi=0.2)))
    if "reacquire" in root.data:
        r = root.section("reacquire")
        r.unknown_keys({"wait_s", "search_speed", "search_distance"})
        cfg = replace(cfg, reacquire=ReacquireParams(
            wait_s=r.number("wait_s", lo=0.0, hi=30.0),
            search_speed=r.number("search_speed", default=0.02, lo=0.0, hi=0.05),  # m/s, below VS's 5 cm/s cap
            search_distance=r.number("search_distance", default=0.03, lo=0.0, hi=0.1)))
    if grasp and cfg.pose_steps == 0 and not cfg.visual_servoing:
        raise ConfigError(f"{path}: a grasp tree needs pose_steps > 0 or visual_servoing: true")
    return cfg


@dataclass(frozen=True)
class ClearParams:
    """The ``clear`` section of a clear_table tree YAML (base frame, metres).

    Attributes:
        bin_position: (x, y) of the bin's centre on the table.
        bin_inner: Inner side of the square bin.
        bin_wall_height: Height of its walls.
        drop_height: Grasp-point height above the table at which the object is released.
        carry_height: Grasp-point height of carries (above every object on the table).
        max_picks: Attempt budget: picks tried before the tree gives up.
        max_leg: Longest straight leg of one arm goal (the safety envelope's max_step is 0.5 m).
    """

    bin_position: tuple[float, float]
    bin_inner: float
    bin_wall_height: float
    drop_height: float
    carry_height: float
    max_picks: int
    max_leg: float


def parse_clear_params(sec: Section) -> ClearParams:
    """Validate the ``clear`` section (one line naming the key on error)."""
    sec.unknown_keys({"bin_position", "bin_inner", "bin_wall_height", "drop_height", "carry_height", "max_picks",
                      "max_leg"})
    x, y = sec.vector("bin_position", 2, lo=-1.0, hi=1.5)
    return ClearParams(
        bin_position=(x, y), bin_inner=sec.number("bin_inner", lo=0.05, hi=0.5),
        bin_wall_height=sec.number("bin_wall_height", lo=0.0, hi=0.2),
        drop_height=sec.number("drop_height", lo=0.05, hi=0.6),
        carry_height=sec.number("carry_height", lo=0.1, hi=0.7),
        max_picks=sec.integer("max_picks", lo=1, hi=100),
        max_leg=sec.number("max_leg", default=0.25, lo=0.01, hi=0.5))


def _vs_overrides(root: Section) -> dict[str, Any] | None:
    """The tree's ``vs_overrides``: sections of the VS file whose keys this tree sets otherwise."""
    value = root.data.get("vs_overrides")
    if value is None:
        return None
    if not isinstance(value, dict):
        raise root.error("vs_overrides", "a mapping of vs.yaml sections, e.g. {gain: {near: 1.4}}", value)
    return value


def load_depth_gate(root: Section) -> DepthGateParams | None:
    """The tree's ``depth_gate`` mapping as DepthGateParams (absent or null: no gate)."""
    from app.controllers.depth_gate import DepthGateParams

    if not root.has("depth_gate") or root.data.get("depth_gate") is None:
        return None
    sec = root.section("depth_gate")
    sec.unknown_keys({"min_height", "inlier_tolerance", "iterations", "sample_points", "min_valid_fraction", "fill_px",
                      "flatten", "flatten_color", "split_touching", "max_split_erode_px", "min_core_px",
                      "split_gap_px"})
    d = DepthGateParams()
    return DepthGateParams(
        min_height=sec.number("min_height", default=d.min_height, lo=0.0, hi=0.1),
        inlier_tolerance=sec.number("inlier_tolerance", default=d.inlier_tolerance, lo=1e-4, hi=0.05),
        iterations=sec.integer("iterations", default=d.iterations, lo=1, hi=10_000),
        sample_points=sec.integer("sample_points", default=d.sample_points, lo=10, hi=1_000_000),
        min_valid_fraction=sec.number("min_valid_fraction", default=d.min_valid_fraction, lo=0.0, hi=1.0),
        fill_px=sec.integer("fill_px", default=d.fill_px, lo=0, hi=63),
        flatten=sec.boolean("flatten", default=d.flatten),
        flatten_color=tuple(sec.vector("flatten_color", 3, default=list(d.flatten_color), lo=0.0, hi=255.0)),
        split_touching=sec.boolean("split_touching", default=d.split_touching),
        max_split_erode_px=sec.integer("max_split_erode_px", default=d.max_split_erode_px, lo=1, hi=63),
        min_core_px=sec.integer("min_core_px", default=d.min_core_px, lo=1, hi=100_000),
        split_gap_px=sec.integer("split_gap_px", default=d.split_gap_px, lo=1, hi=63))


def load_clear_params(root: Section) -> ClearParams:
    """The ``clear`` section of a clear_table tree (see :mod:`app.clearing`)."""
    return parse_clear_params(root.section("clear"))
