"""The capability boundary: what a behaviour-tree leaf can reach, and nothing else.

Leaves receive a :class:`~app.robot.interfaces.Robot` whose camera, arm and gripper expose exactly the
members of the :class:`~app.robot.interfaces.Camera`, :class:`~app.robot.interfaces.Arm` and
:class:`~app.robot.interfaces.Gripper` protocols, and a clock that only tells the time. Anything else
a backend happens to carry (``SimCamera.last_raw()`` with the true mask and exact depth,
``SimArm.world``, ``SimArm.teleport``, ``SafeArm.check_target``, a wrapped ``.arm``) raises
:class:`CapabilityError` naming the member and the protocol, so a leaf that reaches for it fails
loudly, and the runner reports that leaf as the failed node.

The wrappers hold their backend only in closures: they have no instance attributes, refuse new
ones, and ``getattr`` of anything outside the protocol raises. (Python has no true sandbox:
code that digs through ``__closure__`` on purpose can still get out; the boundary is against
accidental and convenient reads, the ones a review cannot see.)

The arm behind the boundary is always a :class:`~app.robot.safety.SafeArm`: :func:`leaf_robot` puts
one in front of an arm that is not behind the envelope yet, so no leaf command bypasses it.
Ground truth stays where it was: the oracle tree gets :class:`app.sim.truth.GroundTruth` at
build time and scoring reads it through the session, never through the camera.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import Any

from app.robot.interfaces import Arm, Camera, Gripper, Robot
from app.robot.safety import SafeArm, SafetyLimits, load_safety


class CapabilityError(Exception):
    """A leaf reached for something outside the Camera/Arm/Gripper protocols.

    Deliberately not an ``AttributeError``: ``hasattr`` and ``getattr(obj, name, default)`` raise
    it too, so a leaf cannot probe quietly for a backend's extras and fall back silently.
    """


class LeafClock:
    """What a leaf may know of the clock: the control period and the time, never ``advance``."""

    period: float  # seconds per control tick

    def now(self) -> float:
        """Seconds since the session started."""


def protocol_members(protocol: type) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Public members of a protocol class, read from its definition.

    Returns:
        (attributes, methods): properties and annotated attributes (read on access), and methods
        (called through).
    """
    attrs: list[str] = [n for n in getattr(protocol, "__annotations__", {}) if not n.startswith("_")]
    methods: list[str] = []
    for name, value in vars(protocol).items():
        if name.startswith("_"):
            continue
        if isinstance(value, property):
            attrs.append(name)
        elif inspect.isfunction(value):
            methods.append(name)
    return tuple(dict.fromkeys(attrs)), tuple(methods)


class _Bounded:
    """Base of the generated wrappers: no instance state, loud on anything outside the protocol."""

    __slots__ = ()
    _protocol_name = "?"
    _allowed: tuple[str, ...] = ()

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__") and name.endswith("__"):  # Python's own probes (dir, copy, pickle)
            raise AttributeError(name)
        raise CapabilityError(f"{name!r} is outside the {self._protocol_name} protocol (app/robot/interfaces.py): "
                              f"a leaf may use only {', '.join(self._allowed)}")

    def __setattr__(self, name: str, value: Any) -> None:
        raise CapabilityError(f"a leaf may not set {name!r} on the {self._protocol_name} it was given")

    def __delattr__(self, name: str) -> None:
        raise CapabilityError(f"a leaf may not delete {name!r} from the {self._protocol_name} it was given")

    def __repr__(self) -> str:
        return f"<{self._protocol_name} behind the leaf boundary>"


def _attribute(target: Any, name: str) -> property:
    return property(lambda self: getattr(target, name), doc=f"``{name}`` of the wrapped backend.")


def _method(target: Any, name: str, spec: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(spec)
    def call(self: Any, *args: Any, **kwargs: Any) -> Any:
        return getattr(target, name)(*args, **kwargs)

    return call


def restrict(target: Any, protocol: type, name: str | None = None) -> Any:
    """``target`` seen through ``protocol`` only.

    Args:
        target: The backend (or a wrapper of it).
        protocol: The protocol class whose members are exposed.
        name: Protocol name in error messages (default: the class name).

    Returns:
        An object with exactly the protocol's members, forwarding each to ``target`` at call
        time; every other attribute access raises :class:`CapabilityError`.
    """
    attrs, methods = protocol_members(protocol)
    namespace: dict[str, Any] = {"__slots__": (), "_protocol_name": name or protocol.__name__,
                                 "_allowed": attrs + methods, "__doc__": protocol.__doc__}
    for a in attrs:
        namespace[a] = _attribute(target, a)
    for m in methods:
        namespace[m] = _method(target, m, getattr(protocol, m))
    cls = type(f"Leaf{protocol.__name__}", (_Bounded,), namespace)
    return cls()


def leaf_robot(robot: Robot, limits: SafetyLimits | None = None) -> Robot:
    """The robot a tree's leaves receive in ``setup()``.

    Args:
        robot: The session's backends (possibly behind fault wrappers and the envelope).
        limits: Envelope for an arm that is not behind a :class:`SafeArm` yet (default
            ``config/safety.yaml``); an arm already behind one is not wrapped twice.

    Returns:
        A :class:`Robot` whose camera, arm and gripper expose only their protocols, whose arm
        commands all pass the safety envelope, and whose clock only tells the time.
    """
    arm = robot.arm
    if not isinstance(arm, SafeArm):
        arm = SafeArm(arm, limits or load_safety(), robot.clock.period)
    return Robot(camera=restrict(robot.camera, Camera), arm=restrict(arm, Arm), gripper=restrict(robot.gripper, Gripper),
                 clock=restrict(robot.clock, LeafClock, "Clock"), backend=robot.backend)
