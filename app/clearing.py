"""The ``clear_table`` tree: pick every object and put it in a bin beside the table.

Built from the grasp tree's subtree factories (:func:`app.trees.grasp_children`):

```
{-} Clear Table (NAME)
    -^- Until Table Clear            repeat until no object is seen or max_picks attempts
        {-} Pick
            --> Open Gripper         (drops whatever a failed pick still holds, where it is)
            {o} Return To Start      rise to carry height, then to the start pose (straight, or
                                     when the wrist is wound too far: up, homing posture in
                                     joint space, start pose)
            {-} Look For Objects     acquire → (flatten) → adapt → [D_X | D_Y] mask → gate → visible?
            --> Reset Pick
            --> Centre Over Object   the gripper over the look's blob nearest the centre (one move)
            ... the grasp subtrees: DRL Pose Steps, Visual Servoing, Close Gripper, Lift And Verify
            {o} Carry To Bin         rise to carry height, over the bin, down to the drop height
                                     (straight, or up, homing posture, then the same)
            --> Release
    {o} Return To Start
```

Parameters: the tree YAML's ``clear`` section (:class:`app.tree_config.ClearParams`); the bin is a pose in
config, outside the camera's view at the start pose.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np
import py_trees

from app.transforms import Pose
from behaviours.clearing import (
    CentreOverObject,
    MoveThrough,
    MoveToJoints,
    ResetPick,
    UntilTableClear,
)
from behaviours.motion import OpenGripper
from behaviours.perception import AcquireFrame, AdaptToSim, ObjectVisible, SegmentObject

if TYPE_CHECKING:
    from app.hardware_config import HardwareConfig
    from app.tree_config import ClearParams, TreeConfig

LOOK_NODE = "Look For Objects"
RETURN_NODE = "Return To Start"


def _at(pose: Pose, z: float) -> Pose:
    """``pose`` moved vertically to grasp-point height ``z``."""
    return Pose(np.array([pose.position[0], pose.position[1], z]), pose.matrix)


def move_or_unwind(name: str, target: str, plan: Callable[[Pose], list[Pose]], p: ClearParams,
                   hw: HardwareConfig) -> py_trees.behaviour.Behaviour:
    """A move through ``plan``'s waypoints, straight (Cartesian legs) where it can; when the wrist
    is wound too far for that (joint 7's limit on the way: the pose steps and VS turn it), rise to
    carry height (where that is reachable), unwind to the homing posture in joint space
    (``hw.home_joints``) and follow the plan from there.

    Args:
        name: The node's name (a Selector: the straight move, else the unwinding sequence).
        target: What the move reaches, for the children's names ("Start", "Bin").
        plan: The waypoints from the current pose (called when the move starts).
        p: Carry height and leg length.
        hw: The homing posture.
    """
    def rise(here: Pose) -> list[Pose]:
        return [_at(here, max(p.carry_height, here.position[2]))]

    return py_trees.composites.Selector(name, memory=True, children=[
        MoveThrough(f"Straight To {target}", plan, p.max_leg),
        py_trees.composites.Sequence(f"Unwind To {target}", memory=True, children=[
            # wound against joint 7's limit even the vertical rise can be out of reach: then the
            # joint-space move starts from here (the envelope checks its path's fingertip height)
            py_trees.decorators.FailureIsSuccess("Rise If Reachable",
                                                 MoveThrough("Rise To Carry Height", rise, p.max_leg)),
            MoveToJoints("Homing Posture", hw.home_joints),
            MoveThrough(f"From Homing To {target}", plan, p.max_leg)])])


def return_to_start(p: ClearParams, hw: HardwareConfig) -> py_trees.behaviour.Behaviour:
    """"Return To Start": rise to carry height, then straight to the start pose, which is higher:
    the path rises all the way and passes over every object (:func:`move_or_unwind`)."""
    start = hw.start_pose()

    def to_start(here: Pose) -> list[Pose]:  # up, then one rising diagonal (the start is above carry height)
        return [_at(here, max(p.carry_height, here.position[2])), start]

    return move_or_unwind(RETURN_NODE, "Start", to_start, p, hw)


def carry_to_bin(p: ClearParams, hw: HardwareConfig) -> py_trees.behaviour.Behaviour:
    """"Carry To Bin": rise to carry height, over the bin, down to the drop height, the
    orientation kept (:func:`move_or_unwind`: from the homing posture when the wrist is wound)."""
    def to_bin(here: Pose) -> list[Pose]:
        above = Pose(np.array([p.bin_position[0], p.bin_position[1], p.carry_height]), here.matrix)
        return [_at(here, p.carry_height), above, _at(above, p.drop_height)]

    return move_or_unwind("Carry To Bin", "Bin", to_bin, p, hw)


def look_for_objects(cfg: TreeConfig, perceive: Callable[[TreeConfig], list[py_trees.behaviour.Behaviour]]
                     ) -> py_trees.behaviour.Behaviour:
    """Acquire → (flatten) → adapt → "Any Object Seen": D_X's mask, else D_Y's, each through the
    depth gate when the tree has one, then "Object Visible?". Fails when neither mask holds an
    object blob: the table is clear.

    Args:
        cfg: The tree variant.
        perceive: The trees' frame-gathering leaves (:func:`app.trees.perceive`), passed in so
            that this module does not import the tree builder that imports it.
    """
    from behaviours.scene import GateByDepth

    feats = cfg.vs.features

    def check(segment: SegmentObject, name: str) -> py_trees.behaviour.Behaviour:
        gate = [GateByDepth(cfg.depth_gate)] if cfg.depth_gate is not None else []
        return py_trees.composites.Sequence(name, memory=False, children=[segment, *gate, ObjectVisible(feats)])

    seen = py_trees.composites.Selector("Any Object Seen", memory=False, children=[
        check(SegmentObject(source="adapted"), "In Adapted Image"),
        check(SegmentObject("Segment Raw Image", source="raw"), "In Raw Image")])
    parts = perceive(cfg)
    assert isinstance(parts[0], AcquireFrame) and isinstance(parts[-1], AdaptToSim)
    return py_trees.composites.Sequence(LOOK_NODE, memory=False, children=[*parts, seen])


def clear_table_tree(cfg: TreeConfig, hw: HardwareConfig, grasp: list[py_trees.behaviour.Behaviour],
                     perceive: Callable[[TreeConfig], list[py_trees.behaviour.Behaviour]]) -> py_trees.behaviour.Behaviour:
    """The clear_table root.

    Args:
        cfg: The tree variant (its grasp keys and its ``clear`` section).
        hw: Hardware (the start pose).
        grasp: The grasp subtrees after "Open Gripper" (pose steps, VS, close, lift).
        perceive: The trees' frame-gathering leaves (:func:`app.trees.perceive`).
    """
    p: ClearParams = cfg.clear  # type: ignore[assignment]
    look = look_for_objects(cfg, perceive)
    pick = py_trees.composites.Sequence("Pick", memory=True, children=[
        OpenGripper(), return_to_start(p, hw), look, ResetPick(),
        CentreOverObject(cfg.vs.features, cfg.vs.depth, cfg.first_blob), *grasp,
        carry_to_bin(p, hw), OpenGripper("Release")])
    return py_trees.composites.Sequence(f"Clear Table ({cfg.name})", memory=True, children=[
        UntilTableClear(pick, look, p.max_picks), return_to_start(p, hw)])
