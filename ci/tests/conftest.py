"""ci/tests: unit tests of the matrix runner's host side (no apt downloads, no guests booted;
tests that need qemu, busybox-static or cpio skip with the reason when they are missing).
Run: pytest-3 ci/tests"""

import json
import shutil
import sys
from pathlib import Path

import pytest

CI = Path(__file__).resolve().parent.parent
DATA = Path(__file__).resolve().parent / "data"
sys.path.insert(0, str(CI))

from kernel_matrix.guest import GuestRun, StreamReader  # noqa: E402
from kernel_matrix.initramfs import BUSYBOX, is_static_elf  # noqa: E402

GUEST_REPORT = CI.parent / "reports" / "6.1.0-57-amd64.json"


def header_of(report_path):
    """The stream header line a committed guest report was assembled from."""
    report = json.loads(report_path.read_text())
    run = {key: value for key, value in report["run"].items() if key not in ("duration_s", "ended", "ended_detail")}
    return {"type": "header", **{key: report[key] for key in ("schema_version", "tool", "kernel", "liburing", "probe")},
            "run": run, "planned": 3}


def needs_tool(name, package):
    """Skip a test when a host tool it runs is not installed, saying which package gives it."""
    return pytest.mark.skipif(shutil.which(name) is None, reason=f"{name} not installed (apt-get install {package})")


needs_cpio = needs_tool("cpio", "cpio")
needs_static_busybox = pytest.mark.skipif(
    not BUSYBOX.exists() or not is_static_elf(BUSYBOX),
    reason=f"{BUSYBOX} missing or not static (apt-get install busybox-static)")


def result(scenario_id, verdict="pass", **extra):
    """A result object the report schema accepts."""
    family, _, scenario = scenario_id.partition("/")
    return {"id": scenario_id, "family": family, "scenario": scenario.split("[")[0], "params": {},
            "verdict": verdict, "reason": "" if verdict == "pass" else f"{verdict} for a test",
            "duration_ms": 1, "iterations": 1, "metrics": {}, "evidence": {}, **extra}


def line(record_type, **fields):
    return json.dumps({"type": record_type, **fields})


def result_line(scenario_id, verdict="pass", **extra):
    return line("result", **result(scenario_id, verdict, **extra))


def start_line(scenario_id, index=0, planned=3):
    return line("start", id=scenario_id, index=index, planned=planned)


@pytest.fixture
def header_line():
    return json.dumps(header_of(GUEST_REPORT))


@pytest.fixture
def make_run(tmp_path):
    """Factory: a finished GuestRun with the given stream lines and console text."""
    def make(stream_lines=(), console_text="", label="6.1.0-56-amd64", ended=""):
        stream = tmp_path / f"{label}.stream.jsonl"
        stream.write_text("".join(text + "\n" for text in stream_lines))
        run = GuestRun(label, tmp_path / f"{label}.console.log", stream, StreamReader(stream))
        run.reader.poll(final=True)
        run.console_text, run.ended = console_text, ended
        return run
    return make
