"""Sim-to-real grasping application: PPO pose agent + semantic CycleGAN + visual servoing.

Layout, by concern (imports flow CLI -> commands -> application -> interfaces):

* ``app`` itself: the CLI (:mod:`app.cli`, :mod:`app.command`), configuration, the main job
  (:mod:`app.run`, :mod:`app.lifecycle`, :mod:`app.runner`, :mod:`app.episode`), trees, logs and
  the perception bundle.
* :mod:`app.robot`: the Camera / Arm / Gripper interfaces, the safety envelope and the fault
  injection wrappers at those interfaces.
* :mod:`app.controllers`: visual servoing as pure functions.
* :mod:`app.sim` and :mod:`app.hardware`: the two backends (the embedded PyBullet simulator, the
  real RealSense/panda_py hardware).
* :mod:`app.campaigns`: the campaign engine, the evaluate and faults campaigns, reports, stats.
* :mod:`app.tools`: calibrate, bench, dataset, eval-models, inspect.
"""

from pathlib import Path

#: Repository root (``app/`` lives directly beneath it).
ROOT: Path = Path(__file__).resolve().parents[1]
#: Directory holding every YAML configuration file.
CONFIG_DIR: Path = ROOT / "config"

__all__ = ["ROOT", "CONFIG_DIR"]
