"""Test doubles of hardware SDKs that cannot run here (a fake of ``panda_py``).

The RealSense camera needs no fake: librealsense's own ``software_device`` stands in for it
(see ``tests/test_realsense.py``).
"""

from tests.fakes.fake_panda_py import FakeOptions, FakePandaPy

__all__ = ["FakeOptions", "FakePandaPy"]
