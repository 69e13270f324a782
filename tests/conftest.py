"""Shared fixtures: one simulator session per test module (a world costs ~50 ms to build)."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("OMP_NUM_THREADS", "1")
# Inductor compiles in this process, without a pool of compile workers: one full run on a loaded
# machine aborted in the garbage collector (test_train_gan.py, after the compile tests) while two
# thread-pool workers were alive; the rerun passed. Fewer threads, fewer such races.
os.environ.setdefault("TORCHINDUCTOR_COMPILE_THREADS", "1")


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
