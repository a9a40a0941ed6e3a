"""Issue 9, kill mid-run: SIGKILL the whole suite while a scenario is running; the JSONL file
must hold every finished scenario, rebuild into a valid "interrupted" report, and no process
of the run may survive.

Needs the self-test build of the harness (its selftest/stuck-read scenario blocks until the
watchdog, which gives a reliable moment to kill): URING_CONFORM_SELFTEST=path/to/
uring-conform-selftest (meson test sets it). Without it these tests skip, saying so.
"""

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from conftest import run_cli
from uring_conform.report import load_report

SELFTEST_ENV = "URING_CONFORM_SELFTEST"
WAIT_FOR_FIRST_RESULT_S = 30
# A killed process with a blocked io_uring request took ~3 s to finish exiting here.
WAIT_FOR_EXIT_S = 15


@pytest.fixture(scope="module")
def selftest_binary():
    path = os.environ.get(SELFTEST_ENV)
    if not path:
        pytest.skip(f"{SELFTEST_ENV} is not set (path to a built uring-conform-selftest)")
    if not os.access(path, os.X_OK):
        pytest.skip(f"{SELFTEST_ENV}={path} is not an executable file")
    return Path(path).resolve()  # tests run it from their own directories


def complete_result_ids(jsonl_path):
    """Ids on complete result lines (a torn last line is not complete)."""
    ids = []
    for raw in jsonl_path.read_bytes().split(b"\n"):
        try:
            line = json.loads(raw)
        except ValueError:
            continue
        if isinstance(line, dict) and line.get("type") == "result":
            ids.append(line["id"])
    return ids


def processes_in_session(session_id):
    """Live pids whose session is session_id (children in their own process groups included).

    A zombie is dead already; it only waits for init to reap it after its parent was killed.
    """
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue  # exited meanwhile
        # Fields after the ")" that ends the command name: state ppid pgrp session ...
        fields = stat[stat.rindex(")") + 2:].split()
        if int(fields[3]) == session_id and fields[0] not in ("Z", "X"):
            found.append(int(entry.name))
    return found


def wait_until(condition, limit_s):
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return condition()


def test_sigkill_mid_run_keeps_every_finished_scenario(selftest_binary, tmp_path):
    report = tmp_path / "run.json"
    jsonl = tmp_path / "run.json.jsonl"
    suite = subprocess.Popen(
        [str(selftest_binary), "run", "--filter", "selftest/*", "--timeout", "5",
         "--report", str(report), "--quiet"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        started = wait_until(lambda: jsonl.exists() and complete_result_ids(jsonl),
                             WAIT_FOR_FIRST_RESULT_S)
        assert started, f"no result line in {jsonl} within {WAIT_FOR_FIRST_RESULT_S} s"
        os.killpg(suite.pid, signal.SIGKILL)
        suite.wait(timeout=WAIT_FOR_EXIT_S)
        # The session outlives the leader's group; scenario children in their own process
        # groups are still in it. None may survive the suite.
        survivors_gone = wait_until(lambda: not processes_in_session(suite.pid), WAIT_FOR_EXIT_S)
        survivors = processes_in_session(suite.pid)
    finally:
        for pid in processes_in_session(suite.pid):
            os.kill(pid, signal.SIGKILL)  # leave nothing behind, whatever the verdict
        if suite.poll() is None:
            suite.kill()
            suite.wait()
    assert survivors_gone, f"processes of the killed run survived: {survivors}"
    assert not report.exists(), "the final report appeared although the run was killed"

    finished = complete_result_ids(jsonl)
    out = tmp_path / "rebuilt.json"
    run = run_cli("assemble", jsonl, "-o", out)
    assert run.status == 0, run.stderr
    rebuilt = load_report(out)
    assert rebuilt.run["ended"] == "interrupted"
    assert [result["id"] for result in rebuilt.results] == finished
