"""compare: classification, capability and metric diffs, and the pytest session it runs."""

import json

import pytest

from conftest import DEFAULT_ID, assert_one_line_error, run_cli, run_entry_point
from uring_conform.compare import compare
from uring_conform.report import load_report


def compared(make_report, base_verdicts, new_verdicts, noise=0.25, **new_options):
    base = load_report(make_report("6.1", base_verdicts))
    new = load_report(make_report("6.12", new_verdicts, **new_options))
    return compare(base, new, noise=noise)


@pytest.mark.parametrize("old,new,kind", [
    pytest.param("pass", "fail", "regression", id="pass-to-fail"),
    pytest.param("pass", "hang", "regression", id="pass-to-hang"),
    pytest.param("pass", "crash", "regression", id="pass-to-crash"),
    pytest.param("pass", "error", "regression", id="pass-to-error"),
    pytest.param("fail", "pass", "fix", id="fail-to-pass"),
    pytest.param("hang", "pass", "fix", id="hang-to-pass"),
    pytest.param("skip", "pass", "new-feature", id="skip-to-pass"),
    pytest.param("pass", "skip", "changed", id="pass-to-skip"),
    pytest.param("skip", "fail", "changed", id="skip-to-fail"),
    pytest.param("fail", "hang", "changed", id="fail-to-hang"),
    pytest.param("pass", "pass", "unchanged", id="pass-to-pass"),
    pytest.param("fail", "fail", "unchanged", id="fail-to-fail"),
])
def test_compare_classifies_change(make_report, old, new, kind):
    assert compared(make_report, old, new).scenario(DEFAULT_ID).kind == kind


def test_scenarios_only_in_one_report(make_report):
    comparison = compared(make_report, {"multishot/old[none]": "pass"},
                          {"multishot/new[none]": "fail"})
    assert comparison.scenario("multishot/old[none]").kind == "removed"
    assert comparison.scenario("multishot/new[none]").kind == "new-scenario"
    assert comparison.regressions == []
    listed = comparison.to_json()
    assert listed["new_features"]["scenarios_new"] == [{"id": "multishot/new[none]",
                                                        "verdict": "fail"}]
    assert listed["removed_scenarios"] == [{"id": "multishot/old[none]", "verdict": "pass"}]


def test_capabilities_gained_and_lost(make_report):
    comparison = compared(make_report, "pass", "pass", probe={
        "opcodes": ["NOP", "RECV", "READ_MULTISHOT"], "features": [],
        "setup_flags": {"SQPOLL": "EPERM", "DEFER_TASKRUN": "ok"},
        "buf_ring": {"ring": True, "incremental": True},
        "capabilities": {"recv_multishot": True, "timeout_multishot": True}})
    assert comparison.gained == {"opcodes": ["READ_MULTISHOT"], "features": [],
                                 "setup_flags": ["DEFER_TASKRUN"], "buf_ring": ["incremental"],
                                 "capabilities": ["timeout_multishot"]}
    assert comparison.lost == {"opcodes": [], "features": ["NODROP"], "setup_flags": ["SQPOLL"],
                               "buf_ring": [], "capabilities": []}


@pytest.mark.parametrize("metric,old,new,listed", [
    pytest.param("multishot_terminates_on_overflow", True, False, True, id="bool-flips"),
    pytest.param("overflow_policy", "drop", "backlog", True, id="string-changes"),
    pytest.param("overflow_policy", "drop", "drop", False, id="string-same"),
    pytest.param("wakeup_ratio", 0.5, 0.7, True, id="ratio-beyond-noise"),
    pytest.param("wakeup_ratio", 0.5, 0.6, False, id="ratio-within-noise"),
    pytest.param("wakeup_ratio", 0, 0.1, True, id="ratio-from-zero"),
    pytest.param("cqes_seen", 3, 300, False, id="plain-number-ignored"),
    pytest.param("multishot_terminates_on_overflow", True, None, False, id="not-measured"),
])
def test_behaviour_changes_from_metrics(make_report, metric, old, new, listed):
    base = load_report(make_report("6.1", "pass", metrics={DEFAULT_ID: {metric: old}}))
    newer = load_report(make_report("6.12", "pass", metrics={DEFAULT_ID: {metric: new}}))
    changes = compare(base, newer).behaviour_changes
    assert [(c.metric, c.base, c.new) for c in changes] == ([(metric, old, new)] if listed else [])


def test_noise_threshold_is_adjustable(make_report):
    base = load_report(make_report("6.1", "pass", metrics={DEFAULT_ID: {"x_ratio": 1.0}}))
    newer = load_report(make_report("6.12", "pass", metrics={DEFAULT_ID: {"x_ratio": 1.1}}))
    assert compare(base, newer, noise=0.25).behaviour_changes == []
    assert len(compare(base, newer, noise=0.05).behaviour_changes) == 1


def test_data_reports_6_1_to_6_18(data_dir):
    comparison = compare(load_report(data_dir / "report-6.1.json"),
                         load_report(data_dir / "report-6.18.json"))
    assert comparison.regressions == []
    assert [c.id for c in comparison.of_kind("fix")] == ["cancel/fd-all[none]"]
    assert [c.id for c in comparison.of_kind("new-feature")] == ["multishot/timeout-repeat[none]"]
    assert comparison.gained["capabilities"] == ["read_multishot", "timeout_multishot"]
    assert [(c.id, c.metric) for c in comparison.behaviour_changes] == [
        ("multishot/cq-overflow[none,cq=8]", "multishot_terminates_on_overflow")]


def test_cli_regression_fails_the_pytest_session(tmp_path, data_dir):
    out = tmp_path / "changes.json"
    run = run_entry_point("compare", data_dir / "report-6.18.json", data_dir / "report-6.1.json",
                          "--json", out, cwd=tmp_path)
    assert run.status == 1, run.stdout + run.stderr
    assert "test_scenario_did_not_regress[cancel/fd-all[none]] FAILED" in run.stdout
    assert "test_scenario_did_not_regress[multishot/recv-peer-close[none,cq=8]] PASSED" \
        in run.stdout
    assert "evidence: cancel res 1, expected 2" in run.stdout
    assert "Regressions (1):" in run.stdout and "Result: 1 regression" in run.stdout
    classification = json.loads(out.read_text())
    assert [r["id"] for r in classification["regressions"]] == ["cancel/fd-all[none]"]
    assert classification["lost_capabilities"]["opcodes"] == ["READ_MULTISHOT"]
    # Nothing but the requested file is written (no .pytest_cache, no .hypothesis).
    assert [p.name for p in tmp_path.iterdir()] == ["changes.json"]


def test_cli_without_regression_exits_zero_and_lists_features(tmp_path, data_dir):
    run = run_entry_point("compare", data_dir / "report-6.1.json", data_dir / "report-6.18.json",
                          "-q", cwd=tmp_path)
    assert run.status == 0, run.stdout + run.stderr
    assert "6 passed" in run.stdout
    assert "capabilities: read_multishot, timeout_multishot" in run.stdout
    assert "multishot_terminates_on_overflow: true -> false" in run.stdout
    assert list(tmp_path.iterdir()) == []


def test_cli_json_output_is_not_overwritten_without_force(make_report, tmp_path):
    base, new = make_report("6.1"), make_report("6.12")
    out = tmp_path / "out.json"
    out.write_text("keep")
    assert_one_line_error(run_cli("compare", base, new, "--json", out), out)
    assert out.read_text() == "keep"


def test_cli_bad_new_report_names_that_file(make_report, tmp_path):
    broken = tmp_path / "broken.json"
    broken.write_text('{"schema_version": 1}')
    run = run_cli("compare", make_report("6.1"), broken)
    assert_one_line_error(run, broken)
    assert "'tool' is a required property" in run.stderr


@pytest.mark.parametrize("noise", ["-1", "abc", "nan%"])
def test_cli_rejects_bad_noise(make_report, noise):
    run = run_cli("compare", make_report("6.1"), make_report("6.12"), "--noise", noise)
    assert run.status == 2 and len(run.error_lines) == 1, run.stderr
