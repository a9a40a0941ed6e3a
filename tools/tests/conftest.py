"""Shared fixtures: the report schema, a report factory writing under tmp_path, the CLI."""

import contextlib
import copy
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import settings
from hypothesis.configuration import set_hypothesis_home_dir

from uring_conform.cli import main
from uring_conform.report import load_schema, schema_problem

TOOLS_DIR = Path(__file__).resolve().parents[1]
DATA_DIR = Path(__file__).with_name("data")
DEFAULT_ID = "multishot/recv-peer-close[none,cq=8]"

# No example database: hypothesis would otherwise write .hypothesis/ into the working tree.
# Derandomized so CI runs are repeatable; deadline off because the machine is shared.
settings.register_profile("uring_conform", database=None, derandomize=True, deadline=None,
                          max_examples=100)
settings.load_profile("uring_conform")


@pytest.fixture(scope="session", autouse=True)
def _hypothesis_files_outside_the_tree(tmp_path_factory):
    """Hypothesis caches Unicode tables under .hypothesis/ in the working directory otherwise."""
    set_hypothesis_home_dir(str(tmp_path_factory.mktemp("hypothesis")))


@pytest.fixture(autouse=True)
def _plain_terminal(monkeypatch):
    """Pin what output depends on, as pytest's own conftest does: width and no colours."""
    monkeypatch.setenv("COLUMNS", "120")
    monkeypatch.setenv("NO_COLOR", "1")


@pytest.fixture(scope="session")
def schema():
    """reports/report.schema.json, as the tools load it."""
    return load_schema()


def result(result_id, verdict, reason=None, metrics=None, **extra):
    """One report result; the reason defaults to something plausible for non-pass verdicts."""
    family, rest = result_id.split("/", 1)
    scenario = rest.split("[", 1)[0]
    if reason is None:
        reason = "" if verdict == "pass" else f"{verdict}: made up by the test"
    entry = {"id": result_id, "family": family, "scenario": scenario, "params": {},
             "verdict": verdict, "reason": reason, "duration_ms": 1.5, "iterations": 1,
             "metrics": metrics or {}, "evidence": {}}
    entry.update(extra)
    return entry


def report_document(release, verdicts="pass", *, metrics=None, reasons=None, extras=None,
                    probe=None, run=None):
    """A valid report: verdicts is one verdict for DEFAULT_ID or {id: verdict}.

    metrics, reasons and extras ({id: {field: value}}, e.g. timing_dependent) are per id.
    """
    if isinstance(verdicts, str):
        verdicts = {DEFAULT_ID: verdicts}
    results = [result(result_id, verdict, (reasons or {}).get(result_id),
                      (metrics or {}).get(result_id), **(extras or {}).get(result_id, {}))
               for result_id, verdict in verdicts.items()]
    document = {
        "schema_version": 1,
        "tool": {"name": "uring-conform", "version": "0.1.0-test"},
        "kernel": {"release": release, "version": f"#1 SMP {release}", "machine": "x86_64"},
        "liburing": {"compile": "2.3", "runtime": "2.3"},
        "probe": {
            "io_uring": {"usable": True, "reason": ""},
            "opcodes": ["NOP", "RECV"], "features": ["NODROP"],
            "setup_flags": {"SQPOLL": "ok", "DEFER_TASKRUN": "EINVAL"},
            "buf_ring": {"ring": True, "incremental": False},
            "capabilities": {"recv_multishot": True, "timeout_multishot": False},
            "sysctl": {"io_uring_disabled": 0, "io_uring_group": None},
            "memlock_kib": None, "uid": 0},
        "run": {"profile": "quick", "seed": 7, "filter": "*", "started": "2025-02-01T12:00:00Z",
                "duration_s": 1.0, "timeout_s": None, "ended": "complete",
                "environment": "host"},
        "results": results,
        "summary": {"total": len(results), **{v: sum(r["verdict"] == v for r in results)
                                               for v in ("pass", "fail", "skip", "hang",
                                                         "crash", "error")}},
    }
    document["probe"].update(copy.deepcopy(probe or {}))
    document["run"].update(run or {})
    return document


@pytest.fixture
def make_report(tmp_path):
    """Factory: write a valid report under tmp_path and return its path.

    make_report("6.1", "skip") gives one result (DEFAULT_ID) with that verdict;
    make_report("6.1", {id: verdict, ...}, metrics={id: {...}}, extras={id: {...}},
                probe={...}, run={...}).
    """
    def factory(release, verdicts="pass", *, file_name=None, **options):
        document = report_document(release, verdicts, **options)
        problem = schema_problem(document)
        assert problem is None, f"test report is invalid: {problem}"
        path = tmp_path / (file_name or f"{release}.json")
        path.write_text(json.dumps(document, indent=2))
        return path
    return factory


@pytest.fixture
def data_dir():
    return DATA_DIR


class CliRun:
    def __init__(self, status, stdout, stderr):
        self.status, self.stdout, self.stderr = status, stdout, stderr

    @property
    def error_lines(self):
        return self.stderr.splitlines()


def run_cli(*argv):
    """Run main(argv) in-process and capture what it prints (usable inside @given)."""
    stdout, stderr = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        status = main([str(arg) for arg in argv])
    return CliRun(status, stdout.getvalue(), stderr.getvalue())


def run_entry_point(*argv, cwd=None, stdin=None):
    """Run the real entry point, python3 -m uring_conform, in a child process."""
    env = dict(os.environ, PYTHONPATH=str(TOOLS_DIR))
    completed = subprocess.run([sys.executable, "-m", "uring_conform", *map(str, argv)],
                               cwd=cwd, env=env, input=stdin, capture_output=True, text=True,
                               timeout=120)
    return CliRun(completed.returncode, completed.stdout, completed.stderr)


def assert_one_line_error(run, source):
    """The bad-input contract: exit 2 and exactly one stderr line naming the source."""
    assert run.status == 2, (run.status, run.stderr)
    assert len(run.error_lines) == 1, run.stderr
    assert run.error_lines[0].startswith(f"error: {source}"), run.stderr
    assert "Traceback" not in run.stderr
