"""Pipelines on a cron schedule: which slot is due (pure functions over a schedule, its last slot and now), the
schedules of a workspace (``<ws>/schedules.json``, written whole and atomically under a file lock), and the runner that
starts a due pipeline as ``python -m mloop run`` in a subprocess and records its outcome on the schedule.

Cron expressions have five fields (minute hour day-of-month month day-of-week) and are read in UTC, like the loop's."""

from __future__ import annotations

import builtins
import contextlib
import dataclasses
import datetime as dt
import fcntl
import json
import logging
import os
import re
import subprocess
import sys
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from mloop.errors import Conflict, InvalidInput, NotFound
from mloop.files import write_atomic

log = logging.getLogger("mloop.schedules")

LEASE = "pipeline-schedules"
FILE = "schedules.json"
_FORMAT = 1
_MISSED_CAP = 10_000  # counting missed slots stops here (a minutely schedule left for a week)
_KEEP_LOGS = 50  # run logs kept per schedule
_RUN_ID = re.compile(r"\brun ([0-9a-f]{32})\b")
Status = Literal["running", "succeeded", "failed", "lost"]


# -- the schedule, as a value --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Schedule:
    """One pipeline on one cron expression, and what its last run did. ``last_slot`` is the cron time the last run
    (or skip) was for: the next run is the first slot after it (after ``created_at`` for a new schedule)."""

    name: str
    pipeline: str  # the pipeline file's absolute path
    cron: str
    overrides: tuple[str, ...]
    created_at: dt.datetime
    last_slot: dt.datetime | None = None
    started_at: dt.datetime | None = None
    finished_at: dt.datetime | None = None
    status: Status | None = None
    exit_code: int | None = None
    run_id: str | None = None
    pid: int | None = None
    log: str | None = None
    note: str | None = None

    def to_json(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out["overrides"] = list(self.overrides)
        for key, value in out.items():
            if isinstance(value, dt.datetime):
                out[key] = value.isoformat()
        return out

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Schedule:
        values = dict(data)
        values["overrides"] = tuple(values.get("overrides") or ())
        for field in ("created_at", "last_slot", "started_at", "finished_at"):
            if values.get(field) is not None:
                values[field] = dt.datetime.fromisoformat(values[field])
        return cls(**{k: v for k, v in values.items() if k in cls.__dataclass_fields__})


@dataclass(frozen=True)
class Decision:
    """What a tick does with one schedule: ``start`` a run for ``slot``, or ``skip`` the slot because the run started
    earlier is still going; ``missed`` counts the slots before ``slot`` that passed with nothing run (they are not
    run one by one)."""

    name: str
    action: Literal["start", "skip"]
    slot: dt.datetime
    missed: int
    reason: str


# -- pure logic ----------------------------------------------------------------------------------------------------


def check_cron(expression: str, field: str = "--cron") -> str:
    """``expression`` if it is a cron expression of five valid fields, else :class:`InvalidInput` naming ``field``."""
    from croniter import croniter

    fields = expression.split()
    if len(fields) != 5:
        raise InvalidInput(f"{field} takes five fields (minute hour day-of-month month day-of-week, in UTC), e.g. \"0 * * * *\" for "
                           f"every hour; got {len(fields)} in {expression!r}.", field=field)
    if not croniter.is_valid(expression):
        raise InvalidInput(f"{field} {expression!r} is not a valid cron expression: each field takes *, a number in its range "
                           "(minute 0-59, hour 0-23, day 1-31, month 1-12, weekday 0-6), a list a,b, a range a-b or a step */n.",
                           field=field)
    try:
        croniter(expression, dt.datetime(2000, 1, 1, tzinfo=dt.UTC)).get_next(dt.datetime)
    except Exception:  # valid fields that name no time at all (30 February)
        raise InvalidInput(f"{field} {expression!r} never names a time (a day no month has?); check the day and month fields.", field=field) from None
    return " ".join(fields)


def _utc(moment: dt.datetime) -> dt.datetime:
    if moment.tzinfo is None:
        raise InvalidInput(f"A schedule's times are timezone-aware (UTC), got the naive {moment.isoformat()}.", field="now")
    return moment.astimezone(dt.UTC)


def next_slot(cron: str, after: dt.datetime) -> dt.datetime:
    """The first time strictly after ``after`` that ``cron`` (UTC) names.

    >>> str(next_slot("0 * * * *", dt.datetime(2026, 1, 1, 10, 0, tzinfo=dt.UTC)))
    '2026-01-01 11:00:00+00:00'
    """
    from croniter import croniter

    return dt.datetime.fromtimestamp(croniter(cron, _utc(after).timestamp()).get_next(float), dt.UTC)


def latest_slot(cron: str, now: dt.datetime) -> dt.datetime:
    """The last time at or before ``now`` that ``cron`` (UTC) names (``now`` itself when it is one)."""
    from croniter import croniter

    stamp = _utc(now).timestamp()
    latest = croniter(cron, stamp).get_prev(float)
    if croniter(cron, stamp - 1e-6).get_next(float) == stamp:
        latest = stamp  # get_prev is strict: ``now`` itself may be a slot
    return dt.datetime.fromtimestamp(latest, dt.UTC)


def due_slot(cron: str, since: dt.datetime, now: dt.datetime) -> tuple[dt.datetime, int] | None:
    """The latest slot in ``(since, now]`` and how many earlier slots in that span it stands for, or None when no
    slot has passed since ``since``: a schedule that missed several slots runs once, for the latest.

    >>> t = lambda h, m=0: dt.datetime(2026, 1, 1, h, m, tzinfo=dt.UTC)
    >>> due_slot("0 * * * *", t(10, 0), t(10, 59)) is None
    True
    >>> [str(s) for s in due_slot("0 * * * *", t(10, 0), t(13, 5))[:1]], due_slot("0 * * * *", t(10, 0), t(13, 5))[1]
    (['2026-01-01 13:00:00+00:00'], 2)
    """
    first = next_slot(cron, since)
    if first > _utc(now):
        return None
    latest = latest_slot(cron, now)
    missed, slot = 0, first
    while slot < latest and missed < _MISSED_CAP:
        missed += 1
        slot = next_slot(cron, slot)
    return latest, missed


def decide(schedule: Schedule, now: dt.datetime) -> Decision | None:
    """What to do with ``schedule`` at ``now``: nothing (no slot passed since its last slot, or since it was created),
    start a run for the latest passed slot, or skip that slot while the previous run is still going."""
    found = due_slot(schedule.cron, schedule.last_slot or schedule.created_at, now)
    if found is None:
        return None
    slot, missed = found
    when = slot.strftime("%Y-%m-%d %H:%M UTC")
    if schedule.status == "running":
        started = schedule.started_at.strftime("%H:%M:%S") if schedule.started_at else "earlier"
        return Decision(schedule.name, "skip", slot, missed, f"slot {when} skipped: the run started at {started} is still going")
    extra = f" ({missed} earlier slot(s) passed with nothing run: run once, for the latest)" if missed else ""
    return Decision(schedule.name, "start", slot, missed, f"slot {when} passed{extra}")


def read_outcome(exit_code: int | None, log: str) -> tuple[Status, str | None, str | None]:
    """Status, pipeline run id and a one-line message from a run's exit code and its output (``mloop run`` ends with
    ``…; run <id>``; an error is one ``error: …`` line). No exit code means the run's supervisor was lost."""
    ids = _RUN_ID.findall(log)
    lines = [line.strip() for line in log.splitlines() if line.strip()]
    message = next((line for line in reversed(lines) if line.startswith("error:")), lines[-1] if lines else None)
    if exit_code is None:
        return "lost", ids[-1] if ids else None, "the process running it ended without an exit status (see its log)"
    return ("succeeded" if exit_code == 0 else "failed"), (ids[-1] if ids else None), (None if exit_code == 0 else message)


# -- the workspace's schedules -------------------------------------------------------------------------------------


class ScheduleBook:
    """The schedules of a workspace in ``<ws>/schedules.json``: every change reads, edits and rewrites the file whole
    (temporary file, fsync, rename) while holding an exclusive lock on ``schedules.json.lock``, so processes of one
    machine never lose each other's changes and a crash leaves the old file or the new one."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.path = self.root / FILE
        self.runs_dir = self.root / "schedules"

    def list(self) -> list[Schedule]:
        with self._locked(shared=True):
            return self._read()

    def get(self, name: str) -> Schedule:
        schedules = self.list()
        found = next((s for s in schedules if s.name == name), None)
        if found is None:
            valid = ", ".join(s.name for s in schedules) or "none yet"
            raise NotFound(f"No schedule named {name!r} (schedules: {valid}); `mloop schedule list` shows them.", field="NAME")
        return found

    def add(self, schedule: Schedule) -> Schedule:
        """Record a new schedule; a name already taken is refused naming ``--name``."""
        with self.transaction() as schedules:
            if any(s.name == schedule.name for s in schedules):
                raise Conflict(f"A schedule named {schedule.name!r} exists: pick another with --name, or `mloop schedule remove "
                               f"{schedule.name}` first.", field="--name")
            schedules.append(schedule)
        return schedule

    def remove(self, name: str) -> Schedule:
        with self.transaction() as schedules:
            found = next((s for s in schedules if s.name == name), None)
            if found is None:
                valid = ", ".join(s.name for s in schedules) or "none yet"
                raise NotFound(f"No schedule named {name!r} (schedules: {valid}).", field="NAME")
            schedules.remove(found)
        return found

    def update(self, name: str, change: Callable[[Schedule], Schedule | None]) -> Schedule | None:
        """Replace schedule ``name`` by ``change(current)`` in one locked read-modify-write (``change`` returning None
        leaves it as is); None when the schedule was removed meanwhile."""
        with self.transaction() as schedules:
            for index, current in enumerate(schedules):
                if current.name == name:
                    new = change(current)
                    if new is not None:
                        schedules[index] = new
                    return new if new is not None else current
        return None

    @contextlib.contextmanager
    def transaction(self) -> Iterator[builtins.list[Schedule]]:
        """The schedules as a list to edit; written back atomically when the block ends without an error."""
        with self._locked(shared=False):
            schedules = self._read()
            before = [s.to_json() for s in schedules]
            yield schedules
            after = [s.to_json() for s in schedules]
            if after != before:
                write_atomic(self.path, json.dumps({"format": _FORMAT, "schedules": after}, indent=2) + "\n")

    @contextlib.contextmanager
    def _locked(self, *, shared: bool) -> Iterator[None]:
        self.root.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.root / f"{FILE}.lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_SH if shared else fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # closing releases the lock

    def _read(self) -> builtins.list[Schedule]:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return []
        except (OSError, ValueError) as exc:
            raise InvalidInput(f"Cannot read {self.path}: {exc}. Restore it from a backup or remove it (every schedule is lost).",
                               field="schedules") from None
        if data.get("format") != _FORMAT:
            raise InvalidInput(f"{self.path} has format {data.get('format')!r}; this mloop reads format {_FORMAT}: upgrade mloop.",
                               field="schedules")
        return [Schedule.from_json(item) for item in data.get("schedules", [])]


# -- running what is due -------------------------------------------------------------------------------------------

# The shell waits for ``mloop run`` and writes its exit status beside the log, so the status survives the server
# that started it: whichever process holds the lease next reads it.
_SUPERVISOR = 'exit_file=$1; shift; "$@"; code=$?; echo "$code" > "$exit_file.tmp" && mv "$exit_file.tmp" "$exit_file"; exit $code'


@dataclass(frozen=True)
class Outcome:
    """A finished run of a schedule, as recorded."""

    name: str
    status: Status
    exit_code: int | None
    run_id: str | None
    message: str | None


class ScheduleRunner:
    """Starts the due schedules of a workspace as ``python -m mloop run`` subprocesses (a crash or a leak in a pipeline's
    code cannot reach the server) and records each outcome on its schedule. Not thread-safe: one tick at a time, in
    the one process holding the lease (``LeasedLoop``)."""

    def __init__(self, book: ScheduleBook, environment: dict[str, str], *, detach: bool = True,
                 clock: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC)) -> None:
        self.book = book
        self.environment = environment
        self.detach = detach
        self.clock = clock
        self._children: dict[int, subprocess.Popen[bytes]] = {}

    @classmethod
    def of(cls, workspace: Any, *, detach: bool = True) -> ScheduleRunner:
        """The runner of ``workspace``'s schedules; its runs see the workspace's settings as ``MLOOP_*`` variables."""
        return cls(ScheduleBook(workspace.root), {**workspace.settings.environment(), "MLOOP_HOME": str(workspace.root)}, detach=detach)

    def tick(self, *, wait: bool = False) -> tuple[list[Decision], list[Outcome]]:
        """Record the runs that finished, then start (or skip) what is due now; with ``wait`` also wait for the runs
        it started and record them (``mloop schedule run-due``)."""
        outcomes = self.collect()
        decisions: list[Decision] = []
        for schedule in self.book.list():
            try:  # one schedule that cannot be decided or started (a file gone) must not hold back the others
                decision = decide(schedule, self.clock())
                if decision is not None and (applied := self._apply(decision)) is not None:
                    decisions.append(applied)
            except Exception:
                log.exception("schedule %s: could not be decided or started; the others go on", schedule.name)
        if wait:
            for child in builtins.list(self._children.values()):
                child.wait()
            outcomes += self.collect()
        return decisions, outcomes

    def collect(self) -> list[Outcome]:
        """Record every run that has ended since the last look (its exit status file, or a process that is gone)."""
        outcomes = []
        schedules = self.book.list()
        running = {s.pid for s in schedules if s.status == "running"}
        for pid, child in builtins.list(self._children.items()):
            if child.poll() is not None and pid not in running:  # ended and recorded by another process: reap it
                del self._children[pid]
        for schedule in schedules:
            if schedule.status == "running" and schedule.pid is not None and not self._alive(schedule):
                recorded = self.book.update(schedule.name, self._finisher(schedule.pid))
                if recorded is not None and recorded.status != "running":
                    outcomes.append(Outcome(recorded.name, recorded.status or "lost", recorded.exit_code, recorded.run_id, recorded.note))
        return outcomes

    def _apply(self, decision: Decision) -> Decision | None:
        """Start (or skip) under the book's lock, checking again that the slot is still due and nothing runs, so a
        slot is never started twice on this machine even outside the lease."""
        applied: list[Decision] = []

        def change(current: Schedule) -> Schedule | None:
            fresh = decide(current, self.clock())
            if fresh is None or fresh.action != decision.action:
                return None
            applied.append(fresh)
            if fresh.action == "skip":
                return dataclasses.replace(current, last_slot=fresh.slot, note=fresh.reason)
            return self._start(current, fresh)

        self.book.update(decision.name, change)
        return applied[0] if applied else None

    def _start(self, schedule: Schedule, decision: Decision) -> Schedule:
        started = self.clock()
        folder = self.book.runs_dir / schedule.name
        folder.mkdir(parents=True, exist_ok=True)
        self._prune(folder)
        log = folder / f"{started.strftime('%Y%m%dT%H%M%S.%fZ')}.log"
        command = [sys.executable, "-m", "mloop", "--workspace", str(self.book.root), "run", schedule.pipeline,
                   *(arg for item in schedule.overrides for arg in ("--set", item))]
        environment = {**os.environ, **self.environment, "COLUMNS": "1000", "NO_COLOR": "1"}  # one line per message
        with log.open("wb") as out:
            try:
                child = subprocess.Popen(["/bin/sh", "-c", _SUPERVISOR, "sh", f"{log}.exit", *command], stdin=subprocess.DEVNULL,
                                         stdout=out, stderr=subprocess.STDOUT, cwd=Path(schedule.pipeline).parent, env=environment,
                                         start_new_session=self.detach)
            except OSError as exc:  # the pipeline's folder is gone, say: a failed run, recorded, not a crashed tick
                return dataclasses.replace(schedule, last_slot=decision.slot, started_at=started, finished_at=started, status="failed",
                                           exit_code=None, run_id=None, pid=None, log=str(log), note=f"could not start: {exc}")
        self._children[child.pid] = child
        return dataclasses.replace(schedule, last_slot=decision.slot, started_at=started, finished_at=None, status="running",
                                   exit_code=None, run_id=None, pid=child.pid, log=str(log), note=decision.reason)

    def _alive(self, schedule: Schedule) -> bool:
        assert schedule.pid is not None
        if schedule.log is not None and Path(f"{schedule.log}.exit").exists():
            return False
        child = self._children.get(schedule.pid)
        if child is not None:
            return child.poll() is None
        with contextlib.suppress(OSError):  # started by a process that is gone: its supervisor shell may still run (naming this log)
            return f"{schedule.log}.exit".encode() in Path(f"/proc/{schedule.pid}/cmdline").read_bytes()
        try:
            os.kill(schedule.pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return not Path("/proc/self").exists()  # with /proc, a pid without a cmdline naming the log is not the run

    def _finisher(self, pid: int) -> Callable[[Schedule], Schedule | None]:
        """Records the end of the run ``pid`` (and leaves a schedule alone that a newer run already replaced)."""
        return lambda current: self._finish(current) if current.pid == pid else None

    def _finish(self, schedule: Schedule) -> Schedule:
        child = self._children.pop(schedule.pid, None) if schedule.pid is not None else None
        exit_code: int | None = None
        log = Path(schedule.log) if schedule.log else None
        finished = self.clock()
        if log is not None and (status_file := Path(f"{log}.exit")).exists():
            with contextlib.suppress(ValueError, OSError):
                exit_code = int(status_file.read_text().strip())
                finished = dt.datetime.fromtimestamp(status_file.stat().st_mtime, dt.UTC)
        if child is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                code = child.wait(timeout=5)  # reaps it (the shell exits right after writing its status)
                exit_code = code if exit_code is None else exit_code
        text = log.read_text(encoding="utf-8", errors="replace") if log is not None and log.exists() else ""
        status, run_id, message = read_outcome(exit_code, text)
        return dataclasses.replace(schedule, finished_at=finished, status=status, exit_code=exit_code, run_id=run_id, pid=None, note=message)

    @staticmethod
    def _prune(folder: Path) -> None:
        logs = sorted(folder.glob("*.log"))
        for old in logs[: max(0, len(logs) - _KEEP_LOGS + 1)]:
            old.unlink(missing_ok=True)
            Path(f"{old}.exit").unlink(missing_ok=True)


def new_schedule(name: str, pipeline: Path, cron: str, overrides: Sequence[str], now: dt.datetime) -> Schedule:
    """A schedule as ``mloop schedule`` records it (the caller has validated the pipeline with its overrides)."""
    return Schedule(name=name, pipeline=str(pipeline.resolve()), cron=check_cron(cron), overrides=tuple(overrides), created_at=_utc(now))
