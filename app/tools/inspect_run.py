"""``python -m app inspect RUN_DIR``: why did this grasp fail?

Reads a run directory (:mod:`app.logs`: ``ticks.jsonl``, ``episode.json``, ``RUNNING``) and
reports the outcome, the first leaf that failed and its feedback message, the time spent per
node, the VS mode switches and border fallbacks, the VS iterations and the final errors; it
writes a VS error plot like the paper's Fig. 11 into ``RUN_DIR/vs_errors.png``.

Only the log is read: no simulator, no models, so it works as well on a run from the real
robot, and on a run that was interrupted (a torn last line is skipped with a note).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from app.errors import InputError

PLOT_NAME = "vs_errors.png"
#: Records of the run's frame, not of what happened in it (the rest are counted as events).
FRAME_EVENTS = {"tick", "episode_start", "episode_end", "scored"}
#: episode.json keys shown elsewhere in the report; any other key is printed as an extra.
STANDARD_KEYS = {"tree", "object", "seed", "success", "tree_outcome", "outcome", "failed_node", "reason",
                 "ticks", "pose_steps", "vs_iterations", "vs_fallbacks", "vs_mode_switches", "sim_time",
                 "regrasps", "reacquisitions", "static_blobs",
                 "wall_time", "extra", "run_dir", "domain_sha256", "physics_lifted"}
M_TO_CM, RAD_TO_DEG = 100.0, float(np.degrees(1.0))


@dataclass
class NodeTime:
    """Time one node (all nodes of that name) was ticked, whatever it returned.

    ``sim_s`` counts whole control periods, so nodes ticked in the same period share it (a VS
    iteration's leaves each count it). ``own_wall_s`` and ``incl_wall_s`` are the node's own
    wall time, as the runner measured it around each node: for a leaf its whole time, for a
    parent (composite or decorator) only its own bookkeeping; ``incl_wall_s`` adds the
    children's. They are None in a log written before the runner measured nodes.
    """

    node: str
    ticks: int = 0  # ticks in which it was ticked (RUNNING, SUCCESS or FAILURE)
    sim_s: float = 0.0  # control periods of those ticks (s, simulated or camera time)
    failed: int = 0  # of those, ticks in which it returned FAILURE (control flow for conditions)
    leaf: bool | None = None  # no children; None when the log does not say
    own_wall_s: float | None = None  # s, the node's own work, its children excluded
    incl_wall_s: float | None = None  # s, the node and its children

    @property
    def wall_s(self) -> float | None:
        """The time to show: a leaf's own time, a parent's inclusive time (s)."""
        return self.own_wall_s if self.leaf else self.incl_wall_s


@dataclass
class VSSample:
    """One VS iteration, as the blackboard held it after the tick.

    ``error``: (t_x, t_y in m, theta in rad); ``twist``: (v_x, v_y, v_z in m/s, w_x, w_y, w_z in
    rad/s), camera frame.
    """

    tick: int
    iteration: int
    mode: str
    error: list[float]
    twist: list[float]
    fallbacks: int


@dataclass
class ModeSwitch:
    """A change of VS mode between two iterations; a full → linear switch is a border fallback."""

    tick: int
    iteration: int
    old: str
    new: str
    fallback: bool


@dataclass
class LogEvent:
    """Records of one other kind in the log (safety refusals and clamps, exceptions)."""

    count: int
    first_tick: int  # the tick during which the first one was logged
    first: str  # what the first one says


@dataclass
class InspectReport:
    """What :func:`inspect_run` found in a run directory."""

    run_dir: str
    outcome: str  # "success", "failure", "timeout" or "interrupted"
    tree: str | None = None
    object: str | None = None
    backend: str | None = None
    ticks: int = 0  # number of the last tick logged
    sim_time: float = 0.0  # s, simulated (or camera) time at the last tick
    wall_time: float = 0.0  # s, wall time at the last tick
    period_s: float | None = None  # median control period (s)
    failed_node: str = ""
    reason: str = ""
    failure_source: str = ""  # "tick log", "exception" or "episode record"
    active_node: str = ""  # deepest node RUNNING at the last tick (what an interrupted run was doing)
    nodes: list[NodeTime] = field(default_factory=list)
    tree_wall_s: float | None = None  # s, wall time inside the tree (the roots' inclusive time)
    outside_wall_s: float | None = None  # s, wall time between ticks: the clock (physics, camera wait), logging
    vs_iterations: int = 0
    vs_switches: list[ModeSwitch] = field(default_factory=list)
    vs_fallbacks: int = 0
    mask_sources: list[tuple[int, str]] = field(default_factory=list)  # (tick, "adapted"/"raw") at each change
    recoveries: list[tuple[int, str, str, str]] = field(default_factory=list)  # (tick, node, status, message)
    static_blobs: list[tuple[int, str]] = field(default_factory=list)  # (tick, message) of rejected blobs
    regrasps: int = 0
    reacquisitions: int = 0
    final_vs_error: list[float] | None = None  # (t_x, t_y in m, theta in rad)
    final_vs_mode: str | None = None
    episode_extras: dict[str, Any] = field(default_factory=dict)
    log_events: dict[str, LogEvent] = field(default_factory=dict)
    plot_path: str | None = None
    picks: list[dict[str, Any]] = field(default_factory=list)  # clear_table runs: one entry per pick
    notes: list[str] = field(default_factory=list)
    vs_samples: list[VSSample] = field(default_factory=list, repr=False)

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly summary (the per-iteration samples are left out: see the plot)."""
        d = asdict(self)
        d.pop("vs_samples")
        return d


def read_records(path: Path) -> tuple[list[dict[str, Any]], list[str]]:
    """The JSON records of a ``ticks.jsonl``, and notes on the lines that had to be skipped.

    A line that does not parse is skipped: the last one is a torn write of an interrupted run.
    """
    records: list[dict[str, Any]] = []
    notes: list[str] = []
    lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    for i, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:
            rec = None
        if not isinstance(rec, dict):
            where = "a torn last line" if i == len(lines) else f"unreadable line {i}"
            notes.append(f"skipped {where} of {path.name} ({len(line)} characters)")
            continue
        records.append(rec)
    return records, notes


def failing_leaf(nodes: list[dict[str, Any]]) -> tuple[str, str]:
    """The first leaf that failed in one tick's ``nodes`` (post-order, as the runner logs them).

    Conditions (names ending in "?", the tree's naming rule) fail as normal control flow under
    a Selector or an Inverter ("Object Near Border?", "Linear VS Converged?"), and composites
    fail only because a child did and carry no message; so the first failure that is not a
    condition and says why is the cause. Without one, the first non-condition failure, then
    the first failure. "Reacquire Object" is the exception: it is the last resort after "Find
    Object" failed (the runner's selector-aware rule, :func:`app.runner._leaf_failure`), so its
    failure is the cause.
    """
    failed = [(str(n.get("node", "")), str(n.get("message") or "")) for n in nodes if n.get("status") == "FAILURE"]
    for name, msg in failed:  # a recovery node fails last, after the fallbacks it stands behind
        if name == "Reacquire Object" and msg:
            return name, msg
    for keep in (lambda name, msg: not name.endswith("?") and msg,
                 lambda name, msg: not name.endswith("?"),
                 lambda name, msg: True):
        for name, msg in failed:
            if keep(name, msg):
                return name, msg
    return "", ""


def _durations(ticks: list[dict[str, Any]], key: str, period: float | None) -> list[float]:
    """Per-tick durations from the cumulative stamps ``key`` (the last: ``period`` or 0)."""
    t = [float(r.get(key) or 0.0) for r in ticks]
    return [max(0.0, b - a) for a, b in zip(t, t[1:], strict=False)] + [period or 0.0]


def node_times(ticks: list[dict[str, Any]], period: float | None) -> list[NodeTime]:
    """Ticks, simulated time, own and inclusive wall time, and failures per node name, in order
    of first visit (see :class:`NodeTime`)."""
    sim_d = _durations(ticks, "sim_time", period)
    table: dict[str, NodeTime] = {}
    for rec, ds in zip(ticks, sim_d, strict=True):
        seen: set[str] = set()
        for n in rec.get("nodes") or []:
            name = str(n.get("node"))
            row = table.setdefault(name, NodeTime(name))
            row.failed += n.get("status") == "FAILURE"
            if "own_ms" in n:
                row.leaf = bool(n.get("leaf")) if row.leaf is None else row.leaf and bool(n.get("leaf"))
                row.own_wall_s = (row.own_wall_s or 0.0) + float(n.get("own_ms") or 0.0) / 1000
                row.incl_wall_s = (row.incl_wall_s or 0.0) + float(n.get("incl_ms") or 0.0) / 1000
            if name not in seen:  # a name twice in a tick ("Acquire Frame") counts the tick once
                seen.add(name)
                row.ticks += 1
                row.sim_s += ds
    for row in table.values():
        row.sim_s = round(row.sim_s, 4)  # 0.1 ms: below the log's resolution
        if row.own_wall_s is not None and row.incl_wall_s is not None:
            row.own_wall_s, row.incl_wall_s = round(row.own_wall_s, 4), round(row.incl_wall_s, 4)
    return list(table.values())


def tree_and_outside_time(ticks: list[dict[str, Any]]) -> tuple[float | None, float | None]:
    """Wall time inside the tree (the root's inclusive time, summed) and between ticks (s).

    The root is the last node of each tick's post-order list. Between ticks the clock advances
    (physics steps, or the wait for the next camera frame) and the record is logged. None when
    the log has no per-node times.
    """
    if not ticks or not all((r.get("nodes") or [{}])[-1].get("incl_ms") is not None for r in ticks):
        return None, None
    inside = sum(float(r["nodes"][-1]["incl_ms"]) for r in ticks) / 1000
    total = float(ticks[-1].get("wall_time") or 0.0)
    return round(inside, 4), round(max(0.0, total - inside), 4)


def vs_samples(ticks: list[dict[str, Any]]) -> list[VSSample]:
    """One sample per tick in which ``vs_iterations`` went up, with the blackboard carried forward
    (the runner logs a key only when its value changes)."""
    bb: dict[str, Any] = {}
    out: list[VSSample] = []
    for rec in ticks:
        changes = rec.get("blackboard") or {}
        previous = int(bb.get("vs_iterations") or 0)
        bb.update(changes)
        it = int(bb.get("vs_iterations") or 0)
        if "vs_iterations" in changes and it > previous and bb.get("vs_error") is not None:
            twist = list(bb.get("vs_twist") or [0.0] * 6)
            out.append(VSSample(int(rec.get("tick", 0)), it, str(bb.get("vs_mode") or "?"),
                                [float(v) for v in bb["vs_error"]], [float(v) for v in twist],
                                int(bb.get("vs_fallbacks") or 0)))
    return out


def mask_source_changes(ticks: list[dict[str, Any]]) -> list[tuple[int, str]]:
    """(tick, source) each time the VS mask's source changed: "adapted" (D_X) or "raw" (D_Y)."""
    return [(int(rec.get("tick", 0)), str(rec["blackboard"]["mask_source"])) for rec in ticks
            if (rec.get("blackboard") or {}).get("mask_source")]


def picks_of(ticks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The picks of a clear_table run: each pick's outcome, failing node and reason (the
    ``last_pick`` blackboard record), its ticks, and the blob the VS track started on."""
    picks: list[dict[str, Any]] = []
    start, chose = 1, ""
    for t in ticks:
        for n in t.get("nodes") or []:
            msg = str(n.get("message") or "")
            if n.get("node") == "Extract Features" and msg.startswith("chose") and not chose:
                chose = msg.split(";")[0]
        rec = (t.get("blackboard") or {}).get("last_pick")
        if isinstance(rec, dict):
            picks.append({**rec, "first_tick": start, "last_tick": int(t.get("tick", 0)), "chose": chose})
            start, chose = int(t.get("tick", 0)) + 1, ""
    return picks


RECOVERY_NODES = ("Re-grasp", "Reacquire Object", "Note Object Seen")


def recovery_events(ticks: list[dict[str, Any]]) -> list[tuple[int, str, str, str]]:
    """(tick, node, status, message) of the recovery nodes when they matter: each new message
    of "Re-grasp" (its attempt count), each status change of "Reacquire Object" (the start of a
    wait, the give-up) and each re-acquisition "Note Object Seen" reports."""
    out: list[tuple[int, str, str, str]] = []
    last: dict[str, tuple[str, str]] = {}
    for rec in ticks:
        tick = int(rec.get("tick", 0))
        for n in rec.get("nodes") or []:
            name, status, msg = str(n.get("node", "")), str(n.get("status", "")), str(n.get("message") or "")
            if name not in RECOVERY_NODES:
                continue
            if name == "Re-grasp":
                key = (status if status != "RUNNING" else "", msg.split(" (previous")[0])
            elif name == "Reacquire Object":
                key = (status, "")
            else:
                key = ("", msg) if msg.startswith("re-acquired") else last.get(name, ("", ""))
            if last.get(name) != key:
                last[name] = key
                if name != "Note Object Seen" or msg.startswith("re-acquired"):
                    out.append((tick, name, status, msg))
    return out


def static_blob_events(ticks: list[dict[str, Any]]) -> list[tuple[int, str]]:
    """(tick, message) of each blob "Blob Moves With Scene?" rejected as fixed in the image."""
    return [(int(rec.get("tick", 0)), str(n.get("message") or ""))
            for rec in ticks for n in rec.get("nodes") or []
            if n.get("node") == "Blob Moves With Scene?" and n.get("status") == "FAILURE"]


def mode_switches(samples: list[VSSample]) -> list[ModeSwitch]:
    """Mode changes between consecutive VS iterations."""
    return [ModeSwitch(b.tick, b.iteration, a.mode, b.mode, b.fallbacks > a.fallbacks)
            for a, b in zip(samples, samples[1:], strict=False) if a.mode != b.mode]


def log_events(records: list[dict[str, Any]]) -> dict[str, LogEvent]:
    """Count the records that are not ticks nor the episode's frame, by event name."""
    out: dict[str, LogEvent] = {}
    tick = 0
    for rec in records:
        event = str(rec.get("event"))
        if event == "tick":
            tick = int(rec.get("tick", tick))
        elif event not in FRAME_EVENTS:
            if event in out:
                out[event].count += 1
            else:  # logged while the next tick ran (its record comes after)
                what = ": ".join(str(rec[k]) for k in ("node", "command", "detail", "reason") if rec.get(k))
                out[event] = LogEvent(1, tick + 1, what)
    return out


def _load_episode(run_dir: Path, notes: list[str]) -> dict[str, Any] | None:
    path = run_dir / "episode.json"
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as e:
        notes.append(f"episode.json unreadable ({e}); ignored")
        return None
    return data if isinstance(data, dict) else None


def inspect_run(run_dir: Path, plot: bool = True) -> InspectReport:
    """Explain one run directory.

    Args:
        run_dir: A directory written by :func:`app.logs.make_run_dir` (sim or real robot).
        plot: Also write ``run_dir/vs_errors.png`` (when the run has VS iterations).

    Returns:
        The report; ``outcome`` is "interrupted" when ``RUNNING`` is present or the log has no
        ``episode_end`` record, never a result.

    Raises:
        InputError: ``run_dir`` is not a directory or holds no ``ticks.jsonl``.
    """
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise InputError(f"inspect: run directory {str(run_dir)!r} not found")
    log_path = run_dir / "ticks.jsonl"
    if not log_path.is_file():
        raise InputError(f"inspect: {str(run_dir)!r} holds no ticks.jsonl (not a run directory?)")
    records, notes = read_records(log_path)
    events: dict[str, dict[str, Any]] = {}
    for rec in records:
        if rec.get("event") != "tick":
            events.setdefault(str(rec.get("event")), rec)
    ticks = [r for r in records if r.get("event") == "tick"]
    episode = _load_episode(run_dir, notes)
    end = events.get("episode_end")
    interrupted = (run_dir / "RUNNING").exists() or end is None

    start = events.get("episode_start", {})
    source = episode or end or {}
    report = InspectReport(str(run_dir), "interrupted", tree=start.get("tree") or source.get("tree"),
                           object=start.get("object") or source.get("object"), backend=start.get("backend"),
                           notes=notes)
    if interrupted:
        why = "RUNNING marker present" if (run_dir / "RUNNING").exists() else "no episode_end record"
        notes.append(f"interrupted run ({why}): no result")
    elif episode is not None and "success" in episode:
        report.outcome = "success" if episode["success"] else (
            "timeout" if episode.get("outcome") == "timeout" else "failure")
    else:
        report.outcome = str(source.get("outcome", "failure"))

    if ticks:
        last = ticks[-1]
        report.ticks, report.sim_time = int(last.get("tick", len(ticks))), float(last.get("sim_time") or 0.0)
        report.wall_time = float(last.get("wall_time") or 0.0)
        steps = np.diff([float(r.get("sim_time") or 0.0) for r in ticks])
        report.period_s = round(float(np.median(steps[steps > 0])), 6) if np.any(steps > 0) else None
        running = [n for n in last.get("nodes") or [] if n.get("status") == "RUNNING"]
        report.active_node = str(running[0].get("node", "")) if running else ""  # post-order: deepest first
    else:
        notes.append("no tick records")
    report.nodes = node_times(ticks, report.period_s)
    report.tree_wall_s, report.outside_wall_s = tree_and_outside_time(ticks)
    report.log_events = log_events(records)

    if report.outcome in ("failure", "timeout"):
        _explain_failure(report, ticks, events.get("exception"), source)

    samples = vs_samples(ticks)
    report.vs_samples, report.vs_switches = samples, mode_switches(samples)
    report.vs_iterations = samples[-1].iteration if samples else 0
    report.vs_fallbacks = max((s.fallbacks for s in samples), default=0)
    report.mask_sources = mask_source_changes(ticks)
    report.picks = picks_of(ticks)
    report.recoveries = recovery_events(ticks)
    report.static_blobs = static_blob_events(ticks)
    final_bb: dict[str, Any] = {}
    for rec in ticks:
        final_bb.update(rec.get("blackboard") or {})
    report.regrasps = int(final_bb.get("regrasps") or 0)
    report.reacquisitions = int(final_bb.get("reacquisitions") or 0)
    if samples:
        report.final_vs_error, report.final_vs_mode = samples[-1].error, samples[-1].mode
    if episode is not None:
        report.episode_extras = {k: v for k, v in episode.items() if k not in STANDARD_KEYS}
        report.episode_extras.update(episode.get("extra") or {})
    if plot and samples:
        try:
            report.plot_path = str(plot_vs(samples, run_dir / PLOT_NAME, f"{run_dir.name}: {report.outcome}"))
        except OSError as e:  # a read-only run directory: the report still stands
            notes.append(f"plot not written: {e}")
    return report


def _explain_failure(report: InspectReport, ticks: list[dict[str, Any]], exception: dict[str, Any] | None,
                     source: dict[str, Any]) -> None:
    """Fill the failing node and reason: the last tick's statuses, else the runner's records."""
    last = ticks[-1] if ticks else {}
    node, reason = failing_leaf(last.get("nodes") or []) if last.get("root") == "FAILURE" else ("", "")
    if node:
        report.failure_source = "tick log"
    elif exception is not None:
        node, reason, report.failure_source = str(exception.get("node", "")), str(exception.get("reason", "")), "exception"
    else:
        node, reason = str(source.get("failed_node", "")), str(source.get("reason", ""))
        report.failure_source = "episode record"
    report.failed_node, report.reason = node, reason
    recorded = str(source.get("failed_node") or "")
    if recorded and recorded != node:
        why = source.get("reason")
        report.notes.append(f"the episode record names '{recorded}'" + (f": {why}" if why else ""))


def plot_vs(samples: list[VSSample], path: Path, title: str) -> Path:
    """Feature errors and commanded velocities per VS iteration, modes shaded (paper Fig. 11).

    Top: t_x, t_y (cm, left axis) and theta (deg, right axis). Bottom: v_x, v_y (cm/s, left)
    and w_z (deg/s, right). Full-VS iterations are shaded; dashed lines mark mode switches,
    red ones border fallbacks.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    it = np.array([s.iteration for s in samples])
    err = np.array([s.error[:3] for s in samples])
    tw = np.array([s.twist[:6] for s in samples])
    fig, (ax_e, ax_v) = plt.subplots(2, 1, sharex=True, figsize=(10, 6))  # inches
    try:
        panels = ((ax_e, err[:, 0] * M_TO_CM, err[:, 1] * M_TO_CM, err[:, 2] * RAD_TO_DEG,
                   ("$t_x$", "$t_y$", r"$\theta$"), ("error (cm)", "error (deg)")),
                  (ax_v, tw[:, 0] * M_TO_CM, tw[:, 1] * M_TO_CM, tw[:, 5] * RAD_TO_DEG,
                   ("$v_x$", "$v_y$", r"$\omega_z$"), ("velocity (cm/s)", "velocity (deg/s)")))
        for ax, x, y, ang, labels, units in panels:
            handles = ax.plot(it, x, "C0", it, y, "C1")
            twin = ax.twinx()
            handles += twin.plot(it, ang, "C2")
            ax.set_ylabel(units[0])
            twin.set_ylabel(units[1])
            _align_zero(ax, twin)
            ax.axhline(0.0, color="0.6", lw=0.5)
            ax.legend(handles + _mark_modes(ax, samples), [*labels, "full VS", "mode switch", "border fallback"],
                      loc="upper left", bbox_to_anchor=(1.1, 1.0), fontsize="small")  # right of the twin axis
        ax_v.set_xlabel("VS iteration")
        ax_e.set_title(title, fontsize="small")
        fig.tight_layout()
        fig.savefig(path, dpi=100)  # 1000 x 600 px
    finally:
        plt.close(fig)
    return path


def _mark_modes(ax: Any, samples: list[VSSample]) -> list[Any]:
    """Shade the full-VS iterations and draw a line at every mode switch; legend proxies."""
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    shade = {"color": "0.5", "alpha": 0.15, "lw": 0}  # grey: the mode, not a signal
    start = None
    for s in [*samples, None]:
        full = s is not None and s.mode == "full"
        if full and start is None:
            start = s.iteration - 0.5
        elif not full and start is not None:
            end = (s.iteration if s is not None else samples[-1].iteration + 1) - 0.5
            ax.axvspan(start, end, **shade)
            start = None
    switch, fallback = {"color": "0.3", "ls": "--", "lw": 0.8}, {"color": "C3", "ls": "--", "lw": 0.8}
    for sw in mode_switches(samples):
        ax.axvline(sw.iteration - 0.5, **(fallback if sw.fallback else switch))
    return [Patch(**shade), Line2D([], [], **switch), Line2D([], [], **fallback)]


def _align_zero(a: Any, b: Any) -> None:
    """Set the y limits of two twinned axes so that their zeros are at the same height."""
    lims = [list(ax.get_ylim()) for ax in (a, b)]
    for lim in lims:
        lim[0], lim[1] = min(lim[0], 0.0), max(lim[1], 0.0)
        if lim[1] - lim[0] <= 0:
            lim[0], lim[1] = -1.0, 1.0  # a flat zero signal: any symmetric range
    # height of zero from the bottom (0..1): the higher of the two, below 95 % (some headroom)
    frac = min(max(-lo / (hi - lo) for lo, hi in lims), 0.95)
    for ax, (lo, hi) in zip((a, b), lims, strict=True):
        f = -lo / (hi - lo)
        if f < frac:  # lower the bottom
            lo = -frac * hi / (1 - frac)
        elif f > frac:  # raise the top
            hi = -lo * (1 - frac) / frac
        ax.set_ylim(lo, hi)


def format_report(r: InspectReport) -> str:
    """The short human-readable report."""
    head = f"Run {Path(r.run_dir).name}"
    about = ", ".join(f"{k} {v}" for k, v in (("tree", r.tree), ("object", r.object), ("backend", r.backend)) if v)
    lines = [head + (f" ({about})" if about else "")]
    when = f"tick {r.ticks} ({r.sim_time:.2f} s run time, {r.wall_time:.2f} s wall)"
    if r.outcome == "interrupted":
        doing = f"; it was running '{r.active_node}'" if r.active_node else ""
        lines.append(f"Outcome: INTERRUPTED after {when}: no result{doing}")
    else:
        lines.append(f"Outcome: {r.outcome.upper()} at {when}")
    if r.failed_node:
        lines.append(f"  failed node: {r.failed_node}: {r.reason or '(no message)'} [from the {r.failure_source}]")
    if r.recoveries:
        lines.append(f"Recovery: {r.regrasps} re-grasps, {r.reacquisitions} re-acquisitions")
        for tick, node, status, msg in r.recoveries:
            lines.append(f"  tick {tick}: {node} {status}: {msg}")
    if r.vs_iterations:
        lines.append(f"VS: {r.vs_iterations} iterations, mode switches {len(r.vs_switches)}, "
                     f"border fallbacks {r.vs_fallbacks}")
        for sw in r.vs_switches:
            lines.append(f"  iteration {sw.iteration} (tick {sw.tick}): {sw.old} -> {sw.new}"
                         + (" (border fallback)" if sw.fallback else ""))
        for tick, msg in r.static_blobs:
            lines.append(f"  tick {tick}: blob rejected by 'Blob Moves With Scene?': {msg}")
        for tick, source in r.mask_sources:
            lines.append(f"  tick {tick}: VS mask from " + ("D_X on the adapted image" if source == "adapted"
                                                            else "D_Y on the raw image (segmentation fallback)"))
        if r.final_vs_error is not None:
            e = r.final_vs_error
            lines.append(f"  final error ({r.final_vs_mode}): t_x {e[0] * M_TO_CM:+.2f} cm, "
                         f"t_y {e[1] * M_TO_CM:+.2f} cm, theta {e[2] * RAD_TO_DEG:+.1f} deg")
    else:
        lines.append("VS: no iterations")
    if r.picks:
        lines.append(f"Picks: {len(r.picks)}, placed {sum(p['outcome'] == 'placed' for p in r.picks)}")
        for p in r.picks:
            what = "placed" if p["outcome"] == "placed" else f"FAILED at {p['failed_node']}: {p['reason']}"
            lines.append(f"  pick {p['pick']} (ticks {p['first_tick']}-{p['last_tick']}): {what}"
                         + (f"; VS {p['chose']}" if p.get("chose") else ""))
    period = f" (period {r.period_s * 1000:.1f} ms)" if r.period_s else ""
    lines.append(f"Time per node{period}: 'run s' = control periods in which it was ticked (shared by the "
                 "nodes of a tick); 'wall s' = a leaf's own wall time, a parent's inclusive of its children")
    lines.append(f"  {'node':<26} {'ticks':>6} {'run s':>8} {'wall s':>8} {'':<5} {'failed':>7}")
    for n in r.nodes:
        wall, kind = (f"{n.wall_s:>8.3f}", "own" if n.leaf else "incl") if n.wall_s is not None else (f"{'-':>8}", "")
        lines.append(f"  {n.node[:26]:<26} {n.ticks:>6} {n.sim_s:>8.2f} {wall} {kind:<5} {n.failed:>7}")
    if r.tree_wall_s is None and r.nodes:
        lines.append("  (this log has no per-node wall times: written before the runner measured them)")
    elif r.tree_wall_s is not None:
        lines.append(f"  wall time in the tree {r.tree_wall_s:.2f} s; between ticks (clock: physics or camera wait, "
                     f"logging) {r.outside_wall_s:.2f} s")
    for name, ev in r.log_events.items():
        lines.append(f"Log: {name} x{ev.count}, first at tick {ev.first_tick}" + (f": {ev.first}" if ev.first else ""))
    if r.episode_extras:
        lines.append("Episode record: " + ", ".join(f"{k}={v}" for k, v in r.episode_extras.items()))
    if r.plot_path:
        lines.append(f"VS plot: {r.plot_path}")
    lines += [f"Note: {n}" for n in r.notes]
    return "\n".join(lines)


def main_inspect(run_dir: str, as_json: bool) -> int:
    """``python -m app inspect RUN_DIR [--json]``: print the report; 0 once it is printed.

    Raises:
        InputError: bad run directory (the CLI prints it as one line, exit code 2).
    """
    report = inspect_run(Path(run_dir), plot=True)
    print(json.dumps(report.to_dict(), default=str) if as_json else format_report(report))
    return 0
