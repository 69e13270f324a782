"""Simulation speed levers (issue 15 §2), each switchable so a benchmark can time it alone.

* ``lite_arm_shadows``: the arm links behind the wrist camera (``panda_link0`` … ``panda_link5``)
  are drawn with their coarse collision meshes. They are never seen (transparent), but
  TinyRenderer still rasterises every mesh into its shadow map, and in shadowed domains
  (``real``) their detailed meshes were ~60 % of a frame. The wrist link ``panda_link6``, whose
  shadow often falls into the view, keeps its mesh (``panda_link7``'s is already the coarse one).
  Images could change only where the upper arm's shadow reaches the view, with a coarser edge;
  ``tests/test_sim_speed.py`` checks renders along pose-step and VS poses are unchanged.
* ``ik_per_tick``: one inverse-kinematics solve per control period (for the reference at the end
  of the period) with joint targets interpolated linearly over its physics steps, instead of a
  full solve on every physics step (8 per tick at 30 fps).

The levers are read when a world or arm is built (``lite_arm_shadows``) or stepped
(``ik_per_tick``); :func:`sim_speed` switches them for a block (benchmarks, tests).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace


@dataclass(frozen=True)
class SimSpeed:
    """Which simulation speed levers are on."""

    lite_arm_shadows: bool = True
    ik_per_tick: bool = True


FAST = SimSpeed()
EXACT = SimSpeed(lite_arm_shadows=False, ik_per_tick=False)  # the simulation before issue 15
_current = FAST


def current() -> SimSpeed:
    """The levers in force."""
    return _current


@contextmanager
def sim_speed(speed: SimSpeed | None = None, **levers: bool) -> Iterator[SimSpeed]:
    """Use ``speed`` (or the current levers with ``levers`` changed) inside the block."""
    global _current
    before = _current
    _current = replace(speed or before, **levers)
    try:
        yield _current
    finally:
        _current = before
