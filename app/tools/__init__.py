"""Tools around the grasping job, one module per command: ``calibrate`` (:mod:`~app.tools.calibrate`),
``bench`` (:mod:`~app.tools.bench`, :mod:`~app.tools.pipeline_bench`), ``dataset``
(:mod:`~app.tools.dataset_builder`; the robot's half in :mod:`~app.tools.real_dataset`),
``eval-models`` (:mod:`~app.tools.eval_models`) and ``inspect`` (:mod:`~app.tools.inspect_run`).
A new tool (a run viewer, say) goes here as its own module, registered in :data:`app.cli.COMMANDS`.
"""
