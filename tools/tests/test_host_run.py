"""The report of a real run on this machine's kernel.

`meson test` (the `host-run` test, run first and alone) sets
URING_CONFORM_TEST_RUN_DIR and URING_CONFORM_BINARY: the module's fixture runs
the quick profile into DIR/<uname -r>.json (its output in DIR/<uname -r>.log).
URING_CONFORM_HOST_REPORT=FILE judges an existing report instead.

The run is judged against the known kernel issues (`--expect
expectations/known-issues.toml`): a known issue does not turn CI red forever, a
new one must. So the report must be schema-valid and complete, no scenario may
end in `error` (a setup problem of ours), and every fail, hang or crash must be
a known issue (xfail); each is printed with its evidence either way. An xpass
(a known issue that did not happen this run) is printed, not failed: the
timing-dependent ones are rare races. Exit >= 2 is a harness failure.
"""

import json
import os
import subprocess
from pathlib import Path

import pytest

from uring_conform.report import load_report

HOST_REPORT = os.environ.get("URING_CONFORM_HOST_REPORT")
TEST_RUN_DIR = os.environ.get("URING_CONFORM_TEST_RUN_DIR")
ROOT = Path(__file__).resolve().parents[2]
BINARY = Path(os.environ.get("URING_CONFORM_BINARY") or ROOT / "build" / "uring-conform")
KNOWN_ISSUES = ROOT / "expectations" / "known-issues.toml"

pytestmark = pytest.mark.skipif(not (HOST_REPORT or TEST_RUN_DIR),
                                reason="neither URING_CONFORM_TEST_RUN_DIR nor URING_CONFORM_HOST_REPORT set "
                                       "(meson test sets the first)")


def run_quick_profile(run_dir):
    """The quick profile on this kernel; the report path, or a failed test with the run's last lines."""
    run_dir.mkdir(parents=True, exist_ok=True)
    report, log = run_dir / f"{os.uname().release}.json", run_dir / f"{os.uname().release}.log"
    with log.open("w") as out:
        # --force: a run interrupted earlier left its .jsonl here; this scratch report starts over.
        status = subprocess.run([str(BINARY), "run", "--profile", "quick", "--force", "--report", str(report),
                                 "--expect", str(KNOWN_ISSUES)],
                                stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL).returncode
    tail = "".join(log.read_text(errors="replace").splitlines(keepends=True)[-15:])
    if status >= 2:
        pytest.fail(f"{BINARY} run --profile quick exited {status} (a harness failure); {log} ends:\n{tail}")
    print(f"host run exit {status} ({'a failure that is not a known issue' if status == 1 else 'no new failure'}); "
          f"report {report}, output {log}:\n{tail}")
    return report


@pytest.fixture(scope="module")
def host_report():
    return load_report(HOST_REPORT or run_quick_profile(Path(TEST_RUN_DIR)))


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


def _status(result):
    return (result.get("expectation") or {}).get("status")


def test_kernel_findings_carry_evidence(host_report):
    for r in host_report.results:
        if r["verdict"] in ("fail", "hang"):
            known = " (known issue)" if _status(r) == "xfail" else ""
            print(f"kernel finding{known}: {r['verdict']} {r['id']}: {r['reason']}")
            assert r["reason"] and r["evidence"], r["id"]


def test_every_kernel_failure_is_a_known_issue(host_report):
    """A new fail, hang or crash turns CI red until it is fixed or triaged into KNOWN_ISSUES."""
    if HOST_REPORT and not any(_status(r) for r in host_report.results):
        pytest.skip(f"{HOST_REPORT} was not run with --expect {KNOWN_ISSUES}")
    new = {r["id"]: f"{r['verdict']}: {r['reason']}" for r in host_report.results
           if r["verdict"] in ("fail", "hang", "crash") and _status(r) != "xfail"}
    for r in host_report.results:
        if _status(r) == "xpass":
            print(f"worth attention (xpass): {r['id']} was expected to {r['expectation']['expected']} "
                  f"and gave {r['verdict']}")
    assert new == {}, (f"{len(new)} failure(s) not in {KNOWN_ISSUES.relative_to(ROOT)}: a kernel regression to report, "
                       "or a harness bug; add an entry only once checked by hand (expectations/README.md)")


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
