"""Exceptions that the CLI turns into one clear line and an exit code.

Every error a user can cause (a bad file, a bad flag, a missing device) is one of these; the CLI
prints ``str(error)`` on stderr, never a traceback.
"""


class AppError(Exception):
    """Base class for errors reported to the user as one line."""

    exit_code: int = 2


class ConfigError(AppError):
    """A configuration, domain, object-set or tree file is missing or malformed (exit code 2)."""

    exit_code = 2


class InputError(AppError):
    """An image, array or argument at a module boundary has the wrong shape or type (exit 2)."""

    exit_code = 2


class CheckpointError(AppError):
    """A checkpoint is missing, corrupt or does not match the network built from config (exit 2)."""

    exit_code = 2


class HardwareUnavailable(AppError):
    """A camera or robot could not be reached (exit code 3)."""

    exit_code = 3


class HardwareError(AppError):
    """The hardware reported an error while running (a reflex, a frame timeout)."""

    exit_code = 3


class MotionError(AppError):
    """A commanded motion cannot be executed (unreachable target, joint limit)."""

    exit_code = 1


class SimulationError(AppError):
    """The simulation became invalid (a soft body exploded, an object left the world)."""

    exit_code = 1


class OutputError(AppError):
    """An output path cannot be used: a file where a folder is expected, inside a file,
    read-only, a full disk, or a folder another run owns (exit code 2, before any work)."""

    exit_code = 2


class OutputWriteError(AppError):
    """A write failed during the run (disk full, folder removed, permissions changed): the run
    stopped, what was already written is kept (exit code 4)."""

    exit_code = 4
