"""Scheduled pipelines: the due logic on explicit times (a slot passed, not yet due, several missed slots run once, a
new schedule's first run is the first slot after it was created, a slot skipped while a run goes on); the command line
refusing a bad cron, pipeline, override or name with exit 2 naming the field; ``schedule run-due`` running a real
pipeline in a subprocess and recording its status and run id, then doing nothing; two lease holders running one slot
once."""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import functools
import json
import os
import re
import threading
import time
from pathlib import Path

import pytest

from mloop._background import LeasedLoop
from mloop.errors import Conflict, InvalidInput, NotFound
from mloop.pipelines._schedule import LEASE, Decision, Outcome, Schedule, ScheduleBook, ScheduleRunner, check_cron, decide, due_slot, next_slot, read_outcome
from mloop.store import MetadataStore
from mloop.workspace import Workspace
from tests.conftest import run_cli

HOURLY = "0 * * * *"


def at(hour: int, minute: int = 0, second: int = 0, day: int = 1) -> dt.datetime:
    return dt.datetime(2026, 3, day, hour, minute, second, tzinfo=dt.UTC)


def hourly(**changes: object) -> Schedule:
    base = Schedule(name="nightly", pipeline="/p/pipeline.yaml", cron=HOURLY, overrides=(), created_at=at(10, 5))
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


# -- the due logic -------------------------------------------------------------------------------------------------


def test_a_new_schedule_first_runs_at_the_first_slot_after_it_was_created() -> None:
    assert decide(hourly(), at(10, 59, 59)) is None  # created 10:05: the 10:00 slot was before it
    decision = decide(hourly(), at(11, 0, 20))
    assert decision is not None and (decision.action, decision.slot, decision.missed) == ("start", at(11), 0)
    on_a_slot = hourly(created_at=at(10, 0))  # created exactly at a slot: that slot is not its first run
    assert next_slot(HOURLY, on_a_slot.created_at) == at(11) and decide(on_a_slot, at(10, 0, 0)) is None


def test_a_passed_slot_is_due_once_and_then_not_until_the_next() -> None:
    ran = hourly(last_slot=at(11), status="succeeded")
    assert decide(ran, at(11, 59)) is None
    decision = decide(ran, at(12, 0, 0))  # exactly on the slot counts
    assert decision is not None and decision.slot == at(12) and "slot 2026-03-01 12:00 UTC passed" == decision.reason
    assert decide(dataclasses.replace(ran, last_slot=decision.slot), at(12, 30)) is None


def test_several_missed_slots_run_once_for_the_latest() -> None:
    down = hourly(last_slot=at(10), status="succeeded")  # the server was down from 10:30 to 15:20
    decision = decide(down, at(15, 20))
    assert decision is not None and (decision.action, decision.slot, decision.missed) == ("start", at(15), 4)
    assert "4 earlier slot(s) passed with nothing run: run once" in decision.reason
    assert decide(dataclasses.replace(down, last_slot=decision.slot), at(15, 21)) is None
    assert due_slot("0 3 * * 1", at(3, day=2), at(4, day=16)) == (at(3, day=16), 1)  # Mondays at 03:00: 9th and 16th passed


def test_a_slot_that_passes_while_the_last_run_goes_on_is_skipped_not_queued() -> None:
    busy = hourly(last_slot=at(11), status="running", started_at=at(11, 0, 30), pid=123)
    decision = decide(busy, at(12, 1))
    assert decision is not None and decision.action == "skip" and decision.slot == at(12)
    assert decision.reason == "slot 2026-03-01 12:00 UTC skipped: the run started at 11:00:30 is still going"


def test_times_must_be_timezone_aware() -> None:
    with pytest.raises(InvalidInput, match="timezone-aware"):
        decide(hourly(), dt.datetime(2026, 3, 1, 12))


@pytest.mark.parametrize(("expression", "rule"), [("0 * * *", "five fields"), ("0 * * * * *", "five fields"), ("61 * * * *", "not a valid cron"),
                                                  ("0 25 * * *", "not a valid cron"), ("every hour", "five fields"),
                                                  ("0 0 30 2 *", "never names a time")])
def test_a_bad_cron_expression_is_refused_naming_the_option(expression: str, rule: str) -> None:
    with pytest.raises(InvalidInput, match=rule) as error:
        check_cron(expression)
    assert error.value.field == "--cron"


def test_the_outcome_is_read_from_the_exit_code_and_the_last_line_of_mloop_run() -> None:
    run_id = "0123456789abcdef0123456789abcdef"
    assert read_outcome(0, f"  data  ran\npipeline toy: 6 ran, 0 cached, 0 did not succeed in 3.1 s; run {run_id}\n") == ("succeeded", run_id, None)
    assert read_outcome(1, f"pipeline toy: 4 ran, 0 cached, 2 did not succeed in 2.0 s; run {run_id}\n")[:2] == ("failed", run_id)
    assert read_outcome(2, "error: No pipeline file at /gone.yaml.\n") == ("failed", None, "error: No pipeline file at /gone.yaml.")
    assert read_outcome(None, "")[0] == "lost"


# -- the stored schedules ------------------------------------------------------------------------------------------


def test_the_book_refuses_a_taken_name_and_an_unknown_one(tmp_path: Path) -> None:
    book = ScheduleBook(tmp_path)
    book.add(hourly())
    with pytest.raises(Conflict, match="--name") as error:
        book.add(hourly())
    assert error.value.field == "--name"
    with pytest.raises(NotFound, match="schedules: nightly"):
        book.remove("daily")
    assert [s.name for s in book.list()] == ["nightly"] and book.get("nightly") == hourly()  # round-trips through the JSON
    assert json.loads((tmp_path / "schedules.json").read_text())["schedules"][0]["created_at"] == "2026-03-01T10:05:00+00:00"
    assert not list(tmp_path.glob(".schedules.json.*.tmp"))  # written whole, nothing left behind
    book.remove("nightly")
    assert book.list() == []


# -- the command line ----------------------------------------------------------------------------------------------


def test_the_cli_refuses_a_bad_cron_pipeline_override_or_name_with_exit_2_naming_it(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pipeline = str(project / "pipeline.yaml")
    base = ["--workspace", str(project / ".mloop"), "schedule"]  # everything is checked before the workspace is opened

    refusals = [
        ("--cron", [pipeline, "--cron", "0 * * *"], "five fields"),
        ("--cron", [pipeline, "--cron", "0 25 * * *"], "not a valid cron expression"),
        ("PIPELINE", [str(project / "missing.yaml"), "--cron", HOURLY], "No pipeline file"),
        ("--set", [pipeline, "--cron", HOURLY, "--set", "nosuchstep.params.x=1"], "nosuchstep"),
        ("--name", [pipeline, "--cron", HOURLY, "--name", "not a name"], "'not a name'"),
    ]
    for field, args, rule in refusals:
        code, _, err = run_cli([*base, *args], capsys)
        assert code == 2 and field in err and rule in err, (field, code, err)
    broken = project / "broken.yaml"
    broken.write_text("name: toy\nsteps:\n  - name: data\n    ingest: {pth: toy.parquet}\n")
    code, _, err = run_cli([*base, str(broken), "--cron", HOURLY], capsys)
    assert code == 2 and err.startswith("error: PIPELINE:") and "broken.yaml:4" in err  # the file's own line, too


@pytest.mark.slow
def test_the_cli_records_lists_and_removes_schedules(project: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    from mloop.cli._common import console

    monkeypatch.setattr(console, "_width", 200)  # a wide terminal: no column folds
    ws = project / ".mloop"
    Workspace.init(ws).close()
    pipeline = str(project / "pipeline.yaml")
    base = ["--workspace", str(ws), "schedule"]
    code, out, _ = run_cli([*base, pipeline, "--cron", HOURLY, "--set", "model.params.max_iter=30"], capsys)
    assert code == 0 and "schedule toy" in out and "first run" in out
    code, _, err = run_cli([*base, "add", pipeline, "--cron", "30 2 * * *"], capsys)  # the pipeline's name again
    assert code == 1 and "--name" in err and "schedule named 'toy' exists" in err  # a conflict: the operation failed
    code, out, _ = run_cli([*base, pipeline, "--cron", "30 2 * * *", "--name", "toy-nightly"], capsys)
    assert code == 0

    stored = {s.name: s for s in ScheduleBook(ws).list()}
    assert stored["toy"].pipeline == str(project / "pipeline.yaml") and stored["toy"].overrides == ("model.params.max_iter=30",)
    assert stored["toy-nightly"].cron == "30 2 * * *" and stored["toy"].created_at.tzinfo is not None
    code, out, _ = run_cli([*base, "list"], capsys)
    assert code == 0 and "toy-nightly" in out and "30 2 * * *" in out and "next run" in out and "last run id" in out
    code, out, _ = run_cli([*base, "list", "--json"], capsys)
    listed = {s["name"]: s for s in json.loads(out)["schedules"]}
    assert code == 0 and listed["toy-nightly"]["cron"] == "30 2 * * *" and listed["toy-nightly"]["next_run"].endswith("02:30:00+00:00")
    assert listed["toy"]["overrides"] == ["model.params.max_iter=30"] and listed["toy"]["status"] is None
    code, out, _ = run_cli([*base, "remove", "toy"], capsys)
    assert code == 0 and [s.name for s in ScheduleBook(ws).list()] == ["toy-nightly"]
    code, _, err = run_cli([*base, "remove", "toy"], capsys)
    assert code == 2 and "No schedule named 'toy'" in err


# -- running -------------------------------------------------------------------------------------------------------


def _due_since_2020(book: ScheduleBook, name: str) -> None:
    """Pretend the schedule was made in 2020, so that its yearly slot has passed several times."""
    book.update(name, lambda s: dataclasses.replace(s, created_at=dt.datetime(2020, 6, 1, tzinfo=dt.UTC)))


@pytest.mark.slow
def test_run_due_runs_the_pipeline_records_its_run_and_then_has_nothing_to_do(project: Path, capsys: pytest.CaptureFixture[str],
                                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    from mloop.cli._common import console

    monkeypatch.setattr(console, "_width", 200)
    ws_root = project / ".mloop"
    Workspace.init(ws_root).close()
    base = ["--workspace", str(ws_root), "schedule"]
    assert run_cli([*base, str(project / "pipeline.yaml"), "--cron", "0 0 1 1 *", "--set", "model.params.max_iter=30"], capsys)[0] == 0
    book = ScheduleBook(ws_root)
    _due_since_2020(book, "toy")

    code, out, _ = run_cli([*base, "run-due"], capsys)
    assert code == 0, out
    flat = " ".join(out.split())
    missed = dt.datetime.now(dt.UTC).year - 2021  # the yearly slots since 2020-06-01, but the latest, which runs
    assert "toy: started" in flat and f"{missed} earlier slot(s) passed with nothing run: run once" in flat and "toy: succeeded, run" in flat
    done = book.get("toy")
    assert (done.status, done.exit_code, done.pid) == ("succeeded", 0, None) and done.finished_at and done.started_at
    assert done.last_slot is not None and done.last_slot.year == dt.datetime.now(dt.UTC).year and (done.last_slot.month, done.last_slot.day) == (1, 1)
    assert done.run_id is not None and re.fullmatch(r"[0-9a-f]{32}", done.run_id)
    ws = Workspace.open(ws_root)
    run = ws.tracker.client.get_run(done.run_id)  # the pipeline's own run, with its override applied to the model step
    assert run.info.status == "FINISHED" and ws.registry.resolve("toy", "champion").version == 1
    assert done.log is not None and Path(done.log).is_file() and Path(f"{done.log}.exit").read_text().strip() == "0"

    code, out, _ = run_cli([*base, "run-due"], capsys)
    assert code == 0 and "nothing due" in out and book.get("toy") == done
    code, out, _ = run_cli([*base, "list"], capsys)
    assert done.run_id in out and "succeeded" in out


def _store(root: Path) -> MetadataStore:
    store = MetadataStore(f"sqlite:///{root / 'mloop.db'}")
    store.migrate()
    return store


def test_a_run_that_fails_is_recorded_with_its_exit_code_and_message(tmp_path: Path) -> None:
    folder = tmp_path / "gone"
    folder.mkdir()
    book = ScheduleBook(tmp_path / "ws")  # ``mloop run`` refuses a missing file before it opens a workspace
    book.add(Schedule("gone", str(folder / "pipeline.yaml"), "0 0 1 1 *", (), dt.datetime(2020, 6, 1, tzinfo=dt.UTC)))
    decisions, outcomes = ScheduleRunner(book, {}, detach=False).tick(wait=True)
    assert [d.action for d in decisions] == ["start"]
    assert [(o.status, o.exit_code) for o in outcomes] == [("failed", 2)]
    assert outcomes[0].message is not None and "No pipeline file" in outcomes[0].message
    assert book.get("gone").status == "failed" and book.get("gone").note == outcomes[0].message


def test_two_lease_holders_run_one_slot_once(tmp_path: Path) -> None:
    store = _store(tmp_path)
    folder = tmp_path / "p"
    folder.mkdir()
    book = ScheduleBook(tmp_path / "ws")
    book.add(Schedule("once", str(folder / "pipeline.yaml"), "0 0 1 1 *", (), dt.datetime(2020, 6, 1, tzinfo=dt.UTC)))
    runners = [ScheduleRunner(ScheduleBook(tmp_path / "ws"), {}, detach=False) for _ in range(2)]  # two processes' runners
    loops = [LeasedLoop(LEASE, store.monitors, functools.partial(r.tick, wait=True), interval=5, holder=f"worker-{i}")
             for i, r in enumerate(runners)]
    results: list[tuple[list[Decision], list[Outcome]] | None] = [None, None]
    gate = threading.Barrier(2)

    def one(index: int) -> None:
        gate.wait()
        results[index] = loops[index].run_once()

    threads = [threading.Thread(target=one, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    ran = [r for r in results if r is not None]
    assert len(ran) == 1  # the other holder found the lease taken and stood down
    decisions, outcomes = ran[0]
    assert [d.name for d in decisions] == ["once"] and [o.status for o in outcomes] == ["failed"]
    holder = next(loop for loop, r in zip(loops, results, strict=True) if r is not None)
    holder.stop()  # releases the lease: the other process takes over at once, and finds the slot done
    other = next(loop for loop in loops if loop is not holder)
    assert other.run_once() == ([], [])
    other.stop()
    assert len(list((tmp_path / "ws" / "schedules" / "once").glob("*.log"))) == 1  # one run, one log
    store.close()


def test_the_server_runs_the_schedules_under_their_own_lease_every_schedule_interval(tmp_path: Path) -> None:
    from mloop.automation._server import BACKGROUND, pipeline_schedules
    from mloop.settings import Settings

    assert pipeline_schedules in BACKGROUND  # `mloop serve` and `mloop controller` both run it
    ws = Workspace(Settings(home=tmp_path / "ws", schedule_interval=7))
    loop = pipeline_schedules(ws)
    assert loop is not None and (loop.lease, loop.interval) == (LEASE, 7)
    assert pipeline_schedules(Workspace(Settings(home=tmp_path / "ws", schedule_interval=0))) is None  # 0 turns it off
    ws.close()


def test_a_running_schedule_is_not_started_again_and_another_process_records_its_end(tmp_path: Path, request: pytest.FixtureRequest) -> None:
    folder = tmp_path / "p"
    folder.mkdir()
    fifo = folder / "pipeline.yaml"
    os.mkfifo(fifo)  # `mloop run` blocks reading it until the test writes: a run that goes on as long as the test wants
    book = ScheduleBook(tmp_path / "ws")
    book.add(Schedule("slow", str(fifo), HOURLY, (), at(9, 30)))
    now = [at(10, 0, 30)]
    server = ScheduleRunner(book, {}, clock=lambda: now[0])
    assert [d.action for d in server.tick()[0]] == ["start"]
    pid = book.get("slow").pid
    assert pid is not None
    request.addfinalizer(lambda: _kill_group(pid))  # a failed assertion below must not leave the run blocked on the FIFO
    now[0] = at(11, 0, 30)
    decisions, outcomes = server.tick()
    assert [(d.action, d.slot) for d in decisions] == [("skip", at(11))] and outcomes == []
    assert (book.get("slow").status, book.get("slow").pid) == ("running", pid)  # not started a second time

    other = ScheduleRunner(ScheduleBook(tmp_path / "ws"), {}, clock=lambda: now[0])  # the next lease holder: no handle on the child
    assert other.collect() == []  # still going
    deadline = time.monotonic() + 60
    while True:
        try:
            fd = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
            break
        except OSError:  # the child has not opened it yet
            assert time.monotonic() < deadline, "mloop run never read the pipeline file"
            time.sleep(0.05)
    os.write(fd, b"- not a mapping\n")
    os.close(fd)
    log = Path(str(book.get("slow").log))
    while not Path(f"{log}.exit").exists():
        assert time.monotonic() < deadline, log.read_text()
        time.sleep(0.05)
    outcomes = other.collect()
    assert [(o.name, o.status, o.exit_code) for o in outcomes] == [("slow", "failed", 2)] and "a pipeline is a mapping" in str(outcomes[0].message)
    assert server.collect() == [] and book.get("slow").pid is None  # recorded once; the server reaped its child
    assert decide(book.get("slow"), at(11, 59)) is None  # the skipped 11:00 slot is not run late


def _kill_group(pid: int) -> None:
    """The run's whole session (its shell and ``mloop run``), if it is still there."""
    import signal

    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)
