"""Shared fixtures: one simulator session per test module (a world costs ~50 ms to build)."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("OMP_NUM_THREADS", "1")


@pytest.fixture(scope="module")
def real_session():
    """A simulated robot in the real-looking domain."""
    from app.sim.session import SimSession

    s = SimSession(domain="real", seed=0)
    yield s
    s.close()


@pytest.fixture(scope="module")
def seen():
    """The seen object set."""
    from app.sim.objects import load_object_set

    return load_object_set("seen")
