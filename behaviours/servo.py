"""Visual-servoing leaves and the loop decorator; the switching itself is in the tree
(:func:`app.trees.vs_subtree`): Linear VS Step ⇄ Full VS Step, with the border fallback.
"""

from __future__ import annotations

import numpy as np
import py_trees
from py_trees.common import Status

from app.controllers.depth import object_distance_or_surround
from app.controllers.vs import VSParams, compute_targets, vs_step
from app.robot.interfaces import MotionStatus
from behaviours.base import Leaf


class _VSStep(Leaf):
    """One VS iteration in ``mode``: error, gain, twist, command for one control period."""

    mode = "linear"

    def __init__(self, params: VSParams, name: str) -> None:
        super().__init__(name, reads=("features", "frame", "z_g", "vs_iterations", "vs_mode", "vs_fallbacks"),
                         writes=("vs_error", "vs_gain", "vs_twist", "vs_targets", "vs_mode", "vs_iterations", "z_g",
                                 "linear_converged", "vs_converged", "vs_fallbacks"))
        self.params = params

    def _distance(self) -> float | None:
        f = self.bb.features
        est = object_distance_or_surround(self.bb.frame.depth, f.mask, self.params.depth)
        if est.z is not None:
            self.bb.z_g = est.z
            return est.z
        return self.read("z_g")  # keep the last good reading through a hole

    def update(self) -> Status:
        """Compute and send the twist; SUCCESS after commanding (one iteration per tick)."""
        if self.robot.arm.motion_status() == MotionStatus.FAILED:  # e.g. a reflex: commands refused
            return self.fail(f"arm not ready: {self.robot.arm.motion_error()}")
        z = self._distance()
        if z is None:
            self.robot.arm.stop()
            return self.fail("no valid depth over the object blob")
        previous_mode = self.read("vs_mode")
        if previous_mode == "full" and self.mode == "linear":
            self.bb.vs_fallbacks = self.read("vs_fallbacks", 0) + 1
        self.bb.vs_mode = self.mode
        targets = compute_targets(z, self.robot.arm.camera_mount, self.params.fixed_y_target)
        self.bb.vs_targets = [targets.x, targets.y, targets.alpha]
        cmd = vs_step(self.bb.features, targets, z, self.mode, self.params)  # type: ignore[arg-type]
        self.bb.vs_iterations = self.read("vs_iterations", 0) + 1
        self.bb.vs_error = cmd.error.tolist()
        self.bb.vs_gain = cmd.gain
        self.bb.vs_twist = cmd.twist.tolist()
        done = self.on_result(cmd.converged)
        if done:
            self.robot.arm.stop()
        else:
            self.robot.arm.command_velocity(cmd.twist, "camera")
        self.feedback_message = (f"{self.mode}: e ({cmd.error[0] * 100:+.1f} cm, {cmd.error[1] * 100:+.1f} cm, "
                                 f"{np.degrees(cmd.error[2]):+.1f} deg) gain {cmd.gain:.2f}"
                                 + (" converged" if cmd.converged else "") + self.note)
        return Status.SUCCESS

    note = ""  # appended to the feedback message

    def on_result(self, converged: bool) -> bool:  # pragma: no cover - overridden
        """Record convergence on the blackboard; True when VS is done (the arm stops)."""
        return False


class LinearVSStep(_VSStep):
    """Linear VS (x, y only); latches "linear converged" when within tolerance."""

    mode = "linear"

    def __init__(self, params: VSParams, name: str = "Linear VS Step") -> None:
        super().__init__(params, name)
        self._at_border = 0  # ticks in a row converged with the object at the border

    def on_result(self, converged: bool) -> bool:
        """Latch linear convergence; with ``border_patience``, count VS as converged in position
        once it has stayed converged with the object at the image border that many ticks (an
        object too large for full VS's view, e.g. a can at the top edge: else a livelock until
        ``max_iterations``)."""
        if self.read("vs_iterations", 0) <= 1:
            self._at_border = 0
        self.bb.linear_converged = converged
        self.bb.vs_converged = False
        self.note = ""
        patience = self.params.border_patience
        if patience is None:
            return False
        self._at_border = self._at_border + 1 if converged and self.bb.features.near_border else 0
        if self._at_border >= patience:
            self.bb.vs_converged = True
            self.note = f"; at the image border for {self._at_border} ticks: converged in position only"
            return True
        return False


class FullVSStep(_VSStep):
    """Full VS (x, y and the orientation); sets "VS converged" when within tolerance."""

    mode = "full"

    def __init__(self, params: VSParams, name: str = "Full VS Step") -> None:
        super().__init__(params, name)

    def on_result(self, converged: bool) -> bool:
        """Record full convergence."""
        self.bb.vs_converged = converged
        return converged


class LinearConverged(Leaf):
    """Condition "Linear VS Converged?" (the latch set by the linear step)."""

    def __init__(self, name: str = "Linear VS Converged?") -> None:
        super().__init__(name, reads=("linear_converged",))

    def update(self) -> Status:
        """SUCCESS when latched."""
        return Status.SUCCESS if self.read("linear_converged", False) else Status.FAILURE


class UntilConverged(py_trees.decorators.Decorator):
    """Tick the VS iteration once per tick until full VS converges.

    RUNNING while iterating; SUCCESS once "vs_converged" is set; FAILURE when the iteration
    fails (its reason is kept) or after ``max_iterations`` ticks. The budget counts ticks (time at
    the control rate, including ticks where the iteration waits, e.g. to reacquire the object);
    the feedback names both the ticks and the VS iterations actually run.
    """

    def __init__(self, child: py_trees.behaviour.Behaviour, max_iterations: int,
                 name: str = "Until VS Converged") -> None:
        super().__init__(name=name, child=child)
        self.max_iterations = max_iterations
        self.bb = self.attach_blackboard_client(name=name)
        for key in ("vs_converged", "linear_converged", "vs_iterations", "vs_mode", "vs_fallbacks", "features", "z_g"):
            self.bb.register_key(key, access=py_trees.common.Access.WRITE)

    def initialise(self) -> None:
        """Reset the VS state on the blackboard."""
        self.bb.vs_converged = False
        self.bb.linear_converged = False
        self.bb.vs_iterations = 0
        self.bb.vs_fallbacks = 0
        self.bb.vs_mode = None
        self.bb.features = None
        self._ticks = 0

    def update(self) -> Status:
        """Map the child's status to the loop's."""
        self._ticks += 1
        if self.decorated.status == Status.FAILURE:
            self.feedback_message = f"iteration failed: {self.decorated.feedback_message or 'see children'}"
            return Status.FAILURE
        if self.bb.vs_converged:
            self.feedback_message = f"converged after {self._ticks} ticks ({self.bb.vs_iterations} VS iterations)"
            return Status.SUCCESS
        if self._ticks >= self.max_iterations:
            self.feedback_message = (f"not converged after {self.max_iterations} ticks "
                                     f"({self.bb.vs_iterations} VS iterations)")
            return Status.FAILURE
        return Status.RUNNING
