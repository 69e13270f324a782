"""Recovery nodes: re-grasp after a failed grasp, re-acquire a lost object.

* ``Re-grasp`` (:class:`RetryGrasp`), a composite of two children, "Grasp Attempt" and
  "Back Off": it ticks the attempt; when the attempt fails at a grasp (a retryable node: the
  gripper closed on nothing, or the object slipped out during the lift) and attempts are left,
  it ticks "Back Off" (open the gripper, move back along the approach axis) and then the attempt
  again from its start (visual servoing on the object, which may have moved); after
  ``max_attempts`` it fails with the last attempt's reason. Its feedback message ("attempt
  2/3 ...") shows in the tick log and in ``inspect``; ``regrasps`` on the blackboard counts the
  back-offs.
* ``Reacquire Object`` (:class:`ReacquireObject`), the fallback of "Find Or Reacquire" in each
  VS iteration: when the object is not found (occluded, pushed out of view, an empty mask) it
  holds the arm and keeps looking for ``wait_s`` seconds; if the object was last seen near the
  image border it moves the camera slowly back towards where it was (at most
  ``search_distance`` metres); when the object shows again "Note Object Seen" counts a
  ``reacquisitions`` and VS goes on; after ``wait_s`` it fails, naming how long and where.

Both are bounded (attempts, seconds, metres) and move the arm only through the ``Arm`` they
receive in ``setup()`` (the safety envelope in every run).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import py_trees
from py_trees.common import Status

from app.transforms import Pose
from behaviours.base import Leaf
from behaviours.motion import _Move

#: Leaves whose failure means "the grasp itself failed": worth a re-grasp.
RETRYABLE = ("Close Gripper", "Lift And Verify")
TIME_EPS = 1e-6  # s: clock sums of 1/30 s steps land a hair below whole seconds
MAX_BACK_OFF = 0.5  # m: the longest back-off (the start pose is ~0.5 m above the table)


@dataclass(frozen=True)
class RegraspParams:
    """Tree YAML key ``regrasp``.

    Attributes:
        max_attempts: Grasp attempts in all (1: no re-grasp).
        back_off: Distance (m) to move back along the approach axis before servoing again.
    """

    max_attempts: int = 3
    back_off: float = 0.08


@dataclass(frozen=True)
class ReacquireParams:
    """Tree YAML key ``reacquire``.

    Attributes:
        wait_s: Longest time (s) the object may stay unseen before the tree gives up.
        search_speed: Camera speed (m/s) back towards an object lost at the image border.
        search_distance: Longest such move (m).
    """

    wait_s: float = 1.5
    search_speed: float = 0.02
    search_distance: float = 0.03


def first_failure(root: py_trees.behaviour.Behaviour) -> tuple[str, str]:
    """(name, message) of the first failed non-condition leaf under ``root`` that says why."""
    for node in root.iterate():
        if (node.status == Status.FAILURE and not node.children and not node.name.endswith("?")
                and node.feedback_message):
            return node.name, node.feedback_message
    return root.name, root.feedback_message or "failed"


class RetryGrasp(py_trees.composites.Selector):
    """"Re-grasp": run the attempt; after a retryable failure, back off and run it again.

    Drawn as a selector (``[o]``: the attempt, else the back-off), with its own tick.

    Args:
        attempt: The grasp attempt (servo → close → lift), restarted from its first child.
        back_off: The recovery between attempts (open → back off along the approach).
        params: Attempts and distances.
        name: Node name.
    """

    def __init__(self, attempt: py_trees.behaviour.Behaviour, back_off: py_trees.behaviour.Behaviour,
                 params: RegraspParams, name: str = "Re-grasp") -> None:
        super().__init__(name, memory=True, children=[attempt, back_off])
        self.params = params
        self.attempt = 1
        self.phase = "attempt"
        self.bb = self.attach_blackboard_client(name=name)
        self.bb.register_key("regrasps", access=py_trees.common.Access.WRITE)
        self.last_reason = ""

    def _message(self) -> str:
        text = f"attempt {self.attempt}/{self.params.max_attempts}"
        if self.phase == "back off":
            text += f": backing off after '{self.last_reason}'"
        elif self.last_reason:
            text += f" (previous: '{self.last_reason}')"
        return text

    def tick(self) -> Iterator[py_trees.behaviour.Behaviour]:
        """Tick the current phase's child once and map its status (see the class docstring)."""
        if self.status != Status.RUNNING:
            for child in self.children:
                if child.status != Status.INVALID:
                    child.stop(Status.INVALID)
            self.attempt, self.phase, self.last_reason = 1, "attempt", ""
            self.bb.regrasps = 0
            self.initialise()
        child = self.children[0] if self.phase == "attempt" else self.children[1]
        self.current_child = child
        for node in child.tick():
            yield node
        status = child.status
        if self.phase == "attempt":
            if status == Status.FAILURE:
                node, reason = first_failure(child)
                retry = node in RETRYABLE and self.attempt < self.params.max_attempts
                self.last_reason = f"{node}: {reason}"
                if retry:
                    self.phase = "back off"
                    self.bb.regrasps = self.attempt
                    status = Status.RUNNING
                elif node in RETRYABLE:
                    self.feedback_message = (f"gave up after {self.attempt}/{self.params.max_attempts} attempts, "
                                             f"last: {self.last_reason}")
                else:
                    self.feedback_message = f"attempt {self.attempt}/{self.params.max_attempts}: not a grasp failure"
        else:
            if status == Status.SUCCESS:
                child.stop(Status.INVALID)
                self.children[0].stop(Status.INVALID)  # the next tick restarts the attempt from its start
                self.attempt += 1
                self.phase = "attempt"
                status = Status.RUNNING
            elif status == Status.FAILURE:
                node, reason = first_failure(child)
                self.feedback_message = f"back-off before attempt {self.attempt + 1} failed: {node}: {reason}"
        if status == Status.RUNNING or status == Status.SUCCESS:
            self.feedback_message = self._message()
        if status == Status.RUNNING:
            self.status = Status.RUNNING
        else:
            self.stop(status)
        yield self

    def stop(self, new_status: Status = Status.INVALID) -> None:
        """Stop running children too (a pre-empted re-grasp leaves nothing moving)."""
        for child in self.children:
            if child.status == Status.RUNNING:
                child.stop(Status.INVALID)
        py_trees.composites.Composite.stop(self, new_status)


class BackOff(_Move):
    """Move back along the approach axis (gripper -z): by the last descent (``descent_m``, the
    view visual servoing had before it), and at least ``distance`` metres.

    Args:
        distance: Least back-off (m).
    """

    def __init__(self, distance: float, name: str = "Back Off Along Approach") -> None:
        super().__init__(name, reads=("descent_m",), writes=("backed_off",))
        self.distance = distance

    def target_delta(self) -> Pose | None:
        """Straight back along gripper z."""
        d = min(max(self.distance, float(self.read("descent_m", 0.0) or 0.0)), MAX_BACK_OFF)
        self.bb.backed_off = d
        self.feedback_message = f"back {d * 100:.0f} cm along the approach"
        return Pose(np.array([0.0, 0.0, -d]), np.eye(3))


class ReturnAlongApproach(_Move):
    """Undo a back-off (trees without visual servoing): move ``backed_off`` metres forward.

    Succeeds at once when nothing was backed off (the first attempt).
    """

    def __init__(self, name: str = "Return Along Approach") -> None:
        super().__init__(name, reads=("backed_off",), writes=("backed_off",))

    def initialise(self) -> None:
        """Start the move, or note that none is needed."""
        self._none = not self.read("backed_off", 0.0)
        if self._none:
            self._started = True
            return
        super().initialise()

    def target_delta(self) -> Pose | None:
        """Forward along gripper z by the backed-off distance."""
        d = float(self.read("backed_off", 0.0))
        self.bb.backed_off = 0.0
        self.feedback_message = f"forward {d * 100:.0f} cm along the approach"
        return Pose(np.array([0.0, 0.0, d]), np.eye(3))

    def update(self) -> Status:
        """SUCCESS at once on the first attempt, else the move's status."""
        if self._none:
            self.feedback_message = "first attempt: nothing to undo"
            return Status.SUCCESS
        return super().update()


class NoteObjectSeen(Leaf):
    """"Note Object Seen": the object was found this tick; ends a loss (counting a re-acquisition)."""

    def __init__(self, name: str = "Note Object Seen") -> None:
        super().__init__(name, reads=("features", "lost_since", "reacquisitions"),
                         writes=("last_seen", "lost_since", "reacquisitions"))

    def update(self) -> Status:
        """Remember where the object was seen; count a re-acquisition after a loss."""
        self.bb.last_seen = self.bb.features
        lost = self.read("lost_since")
        if lost is not None:
            self.bb.reacquisitions = int(self.read("reacquisitions", 0) or 0) + 1
            self.bb.lost_since = None
            self.feedback_message = (f"re-acquired after {self.robot.clock.now() - lost:.2f} s "
                                     f"(re-acquisition {self.bb.reacquisitions})")
        else:
            self.feedback_message = "in view"
        return Status.SUCCESS


class ReacquireObject(Leaf):
    """"Reacquire Object": hold (or move back towards an object lost at the border) and wait.

    Args:
        params: Wait time, search speed and distance.
    """

    def __init__(self, params: ReacquireParams, name: str = "Reacquire Object") -> None:
        super().__init__(name, reads=("last_seen", "lost_since"), writes=("lost_since", "features"))
        self.params = params
        self._searched = 0.0

    def update(self) -> Status:
        """RUNNING while waiting; FAILURE with the reason after ``wait_s``."""
        now = self.robot.clock.now()
        lost = self.read("lost_since")
        seen = self.read("last_seen")
        if lost is None:
            lost = now
            self.bb.lost_since = now
            self._searched = 0.0
            self._holding = False
        self.bb.features = None  # look for the object afresh (largest blob) when it shows again
        elapsed = now - lost
        border = bool(seen is not None and getattr(seen, "near_border", False))
        where = "" if seen is None else f" (last seen at x_g {seen.x_g:+.2f}, y_g {seen.y_g:+.2f}" + \
            (", at the image border)" if border else ")")
        if elapsed >= self.params.wait_s - TIME_EPS:
            self.robot.arm.stop()
            return self.fail(f"object not seen for {elapsed:.1f} s (waited {self.params.wait_s:.1f} s){where}")
        period = self.robot.clock.period
        if border and self._searched < self.params.search_distance:
            direction = np.array([seen.x_g, seen.y_g], dtype=float)
            norm = float(np.linalg.norm(direction))
            if norm > 0:
                v = direction / norm * self.params.search_speed
                self.robot.arm.command_velocity(np.array([v[0], v[1], 0.0, 0.0, 0.0, 0.0]), "camera")
                self._searched += self.params.search_speed * period
                self.feedback_message = (f"lost at the border {elapsed:.2f} s: moving back towards it "
                                         f"({self._searched * 100:.1f}/{self.params.search_distance * 100:.0f} cm)")
                return Status.RUNNING
        if not getattr(self, "_holding", False):  # once: a velocity command lasts one period anyway
            self.robot.arm.stop()
            self._holding = True
        self.feedback_message = f"holding, object not seen for {elapsed:.2f}/{self.params.wait_s:.1f} s{where}"
        return Status.RUNNING


def find_or_reacquire(find: py_trees.behaviour.Behaviour, params: ReacquireParams) -> py_trees.behaviour.Behaviour:
    """``[o] Find Or Reacquire``: [Find Object → Note Object Seen], else Reacquire Object."""
    found = py_trees.composites.Sequence("Object Found", memory=False, children=[find, NoteObjectSeen()])
    return py_trees.composites.Selector("Find Or Reacquire", memory=False,
                                        children=[found, ReacquireObject(params)])


__all__ = ["RETRYABLE", "BackOff", "NoteObjectSeen", "ReacquireObject", "ReacquireParams", "RegraspParams",
           "RetryGrasp", "ReturnAlongApproach", "find_or_reacquire", "first_failure"]
