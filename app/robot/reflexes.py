"""What an arm error means for recovery: retry, back off, or neither.

libfranka names the reflex that ended a motion in its message, e.g. ``libfranka: Move command
aborted: motion aborted by reflex! ["cartesian_reflex"]``. Only errors that a retry can fix are
retried (:data:`RETRYABLE`): a lost packet (``communication_constraints_violation``) or a motion
that ended while the arm still moved (our own stop). A contact reflex (the arm hit something:
``cartesian_reflex``, ``joint_reflex``, force or torque limits) would only hit it again: the arm
backs off along the approach and the attempt fails.
"""

from __future__ import annotations

import re
from typing import Literal

RETRYABLE = re.compile(r"communication_constraints_violation|still moving|discontinuity",
                       re.IGNORECASE)
CONTACT = re.compile(r"reflex|collision|contact|force_control|_torque_|power_limit", re.IGNORECASE)
BACKOFF_M = 0.03  # m back along the approach after a contact reflex (clears a finger on an object)

ReflexKind = Literal["retry", "contact"]


def reflex_kind(error: str) -> ReflexKind | None:
    """``"retry"`` for an error a retry can fix, ``"contact"`` for a contact reflex, None for
    anything else (not a reflex: no recovery)."""
    if RETRYABLE.search(error):
        return "retry"
    if CONTACT.search(error):
        return "contact"
    return None
