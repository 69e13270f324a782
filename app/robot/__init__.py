"""The robot as the trees see it: the ``Camera`` / ``Arm`` / ``Gripper`` / ``Clock`` interfaces
(:mod:`~app.robot.interfaces`), the safety envelope around the arm (:mod:`~app.robot.safety`),
and the fault-injection wrappers at those interfaces (:mod:`~app.robot.fault_injection`). The
backends that implement them are :mod:`app.sim` and :mod:`app.hardware`.
"""
