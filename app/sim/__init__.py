"""The embedded simulator: PyBullet world, appearance domains, objects and sim backends.

Only :mod:`app.sim.pybullet_world` imports ``pybullet``.
"""
