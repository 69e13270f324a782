"""The physical safety audit: what the hand actually did to the world, from the simulator's contacts.

Scoring code (it reads simulator ground truth), attached to a session's clock for one episode.
Per physics step it watches:

* ``table_strikes``: hand or finger contact with the table pressing harder than
  :data:`STRIKE_FORCE_N`, counted once per contact (a new strike after the contact ends);
* ``self_collisions_or_limits``: an arm joint reaching its limit or a target IK could not reach
  (each counted once per onset). Self-collision proper is left out: the world loads the Panda
  without PyBullet's self-collision flag, so the simulator never reports one;
* ``object_pushed_m``: how far the object moved between the start of the episode and the moment
  Close Gripper started (:meth:`PhysicalAudit.freeze`), or the end when it never started.

These are the physical counterpart of the safety envelope: the envelope filters commands by a
model of the hand; this audit checks the outcome against the simulator's own geometry.
"""

from __future__ import annotations

from typing import Any

import numpy as np

STRIKE_FORCE_N = 1.0  # N: a contact pressing harder than this is a strike, not a graze
LIMIT_MARGIN_RAD = 0.01  # rad (~0.6 deg): a joint this close to its limit is at the limit


def at_joint_limit(world: Any) -> bool:
    """Whether an arm joint of ``world`` (a :class:`~app.sim.pybullet_world.PyBulletWorld`) is
    within :data:`LIMIT_MARGIN_RAD` of one of its limits."""
    q = world.joint_positions()
    return bool(np.any(q <= world.lower + LIMIT_MARGIN_RAD) or np.any(q >= world.upper - LIMIT_MARGIN_RAD))


class PhysicalAudit:
    """Counts table strikes, limit/self-collision events and the object's push in one episode.

    Args:
        session: A :class:`~app.sim.session.SimSession` after ``reset`` (the object at rest).
    """

    def __init__(self, session: Any) -> None:
        self.s = session
        self.world = session.world
        self.table_strikes = 0
        self.limit_hits = 0
        self._unreachable0 = session.arm.unreachable
        self._start = self.world.object_pose().position.copy()
        self._pushed: float | None = None
        self._striking = self._at_limit = False
        self.max_table_force = 0.0

    def __enter__(self) -> PhysicalAudit:
        self.s.clock.observers.append(self.observe)
        return self

    def __exit__(self, *exc: object) -> None:
        if self.observe in self.s.clock.observers:
            self.s.clock.observers.remove(self.observe)

    def observe(self) -> None:
        """One physics step: update the counters (rising edges only)."""
        w = self.world
        force = w.table_contact_force()
        self.max_table_force = max(self.max_table_force, force)
        striking = force > STRIKE_FORCE_N
        self.table_strikes += striking and not self._striking
        self._striking = striking
        at_limit = at_joint_limit(w)
        self.limit_hits += at_limit and not self._at_limit
        self._at_limit = at_limit

    def pushed(self) -> float:
        """Distance (m) the object has moved since the episode started."""
        return float(np.linalg.norm(self.world.object_pose().position - self._start))

    def freeze(self) -> None:
        """Close Gripper started: from now on the object is meant to move."""
        if self._pushed is None:
            self._pushed = self.pushed()

    def record(self) -> dict[str, Any]:
        """The audit's keys of a results line."""
        unreachable = self.s.arm.unreachable - self._unreachable0
        return {"table_strikes": int(self.table_strikes),
                "object_pushed_m": round(self._pushed if self._pushed is not None else self.pushed(), 5),
                "self_collisions_or_limits": int(self.limit_hits + unreachable),
                "audit": {"joint_limit_hits": int(self.limit_hits),
                          "unreachable_targets": int(unreachable),
                          "max_table_force_n": round(self.max_table_force, 3)}}
