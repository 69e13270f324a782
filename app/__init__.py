"""Sim-to-real grasping application: PPO pose agent + semantic CycleGAN + visual servoing.

The package is laid out as the design card asks: ``app`` holds the CLI, configuration,
lifecycle, logging, trees, evaluation, the hardware interfaces and both backends (the embedded
PyBullet simulator and the real RealSense/panda_py hardware).
"""

from pathlib import Path

#: Repository root (``app/`` lives directly beneath it).
ROOT: Path = Path(__file__).resolve().parents[1]
#: Directory holding every YAML configuration file.
CONFIG_DIR: Path = ROOT / "config"

__all__ = ["ROOT", "CONFIG_DIR"]
