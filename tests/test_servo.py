"""Tests of behaviours.servo's loop decorator: its budget counts ticks, its feedback says both."""

from __future__ import annotations

import py_trees
import pytest
from py_trees.common import Status

from behaviours.servo import UntilConverged


class _Iteration(py_trees.behaviour.Behaviour):
    """Stands for the VS iteration: runs one iteration on the ticks in ``runs``, waits on the others,
    and sets "vs_converged" on iteration ``converge_at`` (0: never)."""

    def __init__(self, runs: set[int], converge_at: int) -> None:
        super().__init__("Iteration")
        self.runs, self.converge_at, self.n = runs, converge_at, 0
        self.bb = self.attach_blackboard_client(name="Iteration")
        for key in ("vs_iterations", "vs_converged"):
            self.bb.register_key(key, access=py_trees.common.Access.WRITE)

    def update(self) -> Status:
        self.n += 1
        if self.n in self.runs:
            self.bb.vs_iterations += 1
            if self.bb.vs_iterations == self.converge_at:
                self.bb.vs_converged = True
        return Status.RUNNING


def _run(child: _Iteration, budget: int) -> tuple[list[Status], str]:
    py_trees.blackboard.Blackboard.clear()
    loop = UntilConverged(child, budget)
    statuses = []
    for _ in range(budget + 5):
        loop.tick_once()
        statuses.append(loop.status)
        if loop.status != Status.RUNNING:
            break
    return statuses, loop.feedback_message


def test_converges_and_names_ticks_and_iterations() -> None:
    statuses, msg = _run(_Iteration(runs={1, 2, 4, 5}, converge_at=4), budget=10)  # tick 3: waiting
    assert statuses == [Status.RUNNING] * 4 + [Status.SUCCESS]
    assert msg == "converged after 5 ticks (4 VS iterations)"


@pytest.mark.parametrize("runs", [set(range(1, 20)), {2, 7}])
def test_budget_counts_ticks_not_iterations(runs: set[int]) -> None:
    statuses, msg = _run(_Iteration(runs=runs, converge_at=0), budget=8)
    assert statuses == [Status.RUNNING] * 7 + [Status.FAILURE]
    assert msg == f"not converged after 8 ticks ({len(runs & set(range(1, 9)))} VS iterations)"
