"""The report of a real run on this machine's kernel (written by ./conform test).

These tests judge the harness, not the kernel: the report must be schema-valid
and complete, and no scenario may end in `error` (a setup problem of ours).
Kernel verdicts (fail, hang) are findings; they are printed, not asserted.
"""

import json
import os
import subprocess
from pathlib import Path

import pytest

from uring_conform.report import load_report

HOST_REPORT = os.environ.get("URING_CONFORM_HOST_REPORT")
BINARY = Path(__file__).resolve().parents[2] / "build" / "uring-conform"

pytestmark = pytest.mark.skipif(not HOST_REPORT, reason="URING_CONFORM_HOST_REPORT not set (./conform test sets it)")


@pytest.fixture(scope="module")
def host_report():
    return load_report(HOST_REPORT)


def test_run_completed_on_this_kernel(host_report):
    assert host_report.run["ended"] == "complete"
    assert host_report.release == os.uname().release


def test_every_listed_scenario_has_a_result(host_report):
    listed = json.loads(subprocess.run([str(BINARY), "list", "--json"], check=True, capture_output=True,
                                       text=True).stdout)
    assert sorted(item["id"] for item in listed) == sorted(host_report.results_by_id())


def test_no_scenario_hit_a_setup_error(host_report):
    errors = {r["id"]: r["reason"] for r in host_report.results if r["verdict"] == "error"}
    assert errors == {}


def test_skips_name_their_reason(host_report):
    unexplained = [r["id"] for r in host_report.results if r["verdict"] == "skip" and not r["reason"].strip()]
    assert unexplained == []


def test_kernel_findings_carry_evidence(host_report):
    for r in host_report.results:
        if r["verdict"] in ("fail", "hang"):
            print(f"kernel finding: {r['verdict']} {r['id']}: {r['reason']}")
            assert r["reason"] and r["evidence"], r["id"]


def _process_names():
    names = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                names.append((entry / "comm").read_text().strip())
            except OSError:
                pass  # the process ended while we looked
    return names


def test_nothing_left_behind(host_report):
    """After a full run no scenario process survives and no temporary file of ours remains."""
    assert "uring-conform" not in _process_names()
    assert sorted(Path("/tmp").glob("uring-conform-cancel.*")) == []
