"""compare: classification, what gates, known issues, capability and metric diffs, output."""

import json

import pytest

from conftest import DEFAULT_ID, assert_one_line_error, run_cli, run_entry_point
from uring_conform.compare import compare
from uring_conform.report import load_report

OTHER_ID = "cancel/fd-all[none]"
KNOWN = {"status": "xfail", "expected": "fail", "reason": "-ERESTARTSYS leaks into the CQE",
         "link": "https://example.invalid/bug/1", "source": "expectations/known.toml"}


def compared(make_report, base_verdicts, new_verdicts, noise=0.25, base_options=None,
             id_filter=None, **new_options):
    base = load_report(make_report("6.1", base_verdicts, **(base_options or {})))
    new = load_report(make_report("6.12", new_verdicts, **new_options))
    return compare(base, new, noise=noise, id_filter=id_filter)


@pytest.mark.parametrize("old,new,kind", [
    pytest.param("pass", "fail", "regression", id="pass-to-fail"),
    pytest.param("pass", "hang", "regression", id="pass-to-hang"),
    pytest.param("pass", "crash", "regression", id="pass-to-crash"),
    pytest.param("pass", "error", "regression", id="pass-to-error"),
    pytest.param("skip", "fail", "new-failure", id="skip-to-fail"),
    pytest.param("skip", "hang", "new-failure", id="skip-to-hang"),
    pytest.param("skip", "crash", "new-failure", id="skip-to-crash"),
    pytest.param("skip", "error", "new-failure", id="skip-to-error"),
    pytest.param("fail", "pass", "fix", id="fail-to-pass"),
    pytest.param("hang", "pass", "fix", id="hang-to-pass"),
    pytest.param("skip", "pass", "new-feature", id="skip-to-pass"),
    pytest.param("pass", "skip", "lost", id="pass-to-skip"),
    pytest.param("fail", "hang", "changed", id="fail-to-hang"),
    pytest.param("fail", "skip", "changed", id="fail-to-skip"),
    pytest.param("pass", "pass", "unchanged", id="pass-to-pass"),
    pytest.param("fail", "fail", "unchanged", id="fail-to-fail"),
])
def test_compare_classifies_change(make_report, old, new, kind):
    assert compared(make_report, old, new).scenario(DEFAULT_ID).kind == kind


@pytest.mark.parametrize("old,new,gates", [
    pytest.param("pass", "fail", True, id="regression-gates"),
    pytest.param("skip", "fail", True, id="skip-to-fail-gates"),
    pytest.param("skip", "crash", True, id="skip-to-crash-gates"),
    pytest.param("fail", "pass", False, id="fix-does-not-gate"),
    pytest.param("fail", "hang", False, id="already-broken-does-not-gate"),
    pytest.param("pass", "skip", False, id="lost-does-not-gate"),
    pytest.param("fail", "fail", False, id="unchanged-fail-does-not-gate"),
])
def test_what_gates(make_report, old, new, gates):
    assert bool(compared(make_report, old, new).gating) is gates


@pytest.mark.parametrize("new,kind,gates", [
    pytest.param("fail", "new-failure", True, id="absent-to-fail"),
    pytest.param("error", "new-failure", True, id="absent-to-error"),
    pytest.param("pass", "new-feature", False, id="absent-to-pass"),
    pytest.param("skip", "changed", False, id="absent-to-skip"),
])
def test_id_absent_from_base(make_report, new, kind, gates):
    comparison = compared(make_report, {DEFAULT_ID: "pass"},
                          {DEFAULT_ID: "pass", OTHER_ID: new})
    assert comparison.scenario(OTHER_ID).kind == kind
    assert bool(comparison.gating) is gates


def test_id_absent_from_new_is_removed(make_report):
    comparison = compared(make_report, {DEFAULT_ID: "pass", OTHER_ID: "pass"},
                          {DEFAULT_ID: "pass"})
    assert comparison.scenario(OTHER_ID).kind == "removed"
    assert comparison.gating == []
    assert comparison.to_json()["removed_scenarios"] == [{"id": OTHER_ID, "verdict": "pass"}]


@pytest.mark.parametrize("old,new,expectation,kind,gates,xpass", [
    pytest.param("pass", "fail", KNOWN, "known", False, False, id="xfail-regression-is-known"),
    pytest.param("skip", "fail", KNOWN, "known", False, False, id="xfail-new-failure-is-known"),
    pytest.param("pass", "fail", None, "regression", True, False, id="no-expectation-gates"),
    pytest.param("pass", "hang", {**KNOWN, "status": "xpass"}, "regression", True, True,
                 id="xpass-hang-still-gates"),
    pytest.param("fail", "pass", {**KNOWN, "status": "xpass"}, "fix", False, True,
                 id="xpass-fix-needs-attention"),
    pytest.param("fail", "fail", KNOWN, "unchanged", False, False, id="xfail-unchanged"),
])
def test_expectations(make_report, old, new, expectation, kind, gates, xpass):
    extras = {DEFAULT_ID: {"expectation": expectation}} if expectation else None
    comparison = compared(make_report, old, new, extras=extras)
    change = comparison.scenario(DEFAULT_ID)
    assert (change.kind, bool(comparison.gating), change.xpass) == (kind, gates, xpass)


TIMING = {"timing_dependent": True}


@pytest.mark.parametrize("base_extra,new_extra,kind", [
    pytest.param(TIMING, TIMING, "not-reproduced", id="both-timing-dependent"),
    pytest.param({}, TIMING, "not-reproduced", id="new-timing-dependent"),
    pytest.param(TIMING, {}, "not-reproduced", id="base-timing-dependent"),
    pytest.param({}, {}, "fix", id="deterministic-is-a-fix"),
])
def test_timing_dependent_fail_to_pass_is_not_a_fix(make_report, base_extra, new_extra, kind):
    rounds = {"rounds": 60, "violations": 0}
    comparison = compared(
        make_report, "fail", "pass",
        base_options={"extras": {DEFAULT_ID: base_extra},
                      "metrics": {DEFAULT_ID: {"rounds": 60, "violations": 1}},
                      "reasons": {DEFAULT_ID: "violated in round 3 of 60"}},
        extras={DEFAULT_ID: new_extra}, metrics={DEFAULT_ID: rounds})
    change = comparison.scenario(DEFAULT_ID)
    assert change.kind == kind
    if kind == "not-reproduced":
        assert change.describe() == f"{DEFAULT_ID}: fail -> pass: not reproduced in 60 rounds " \
                                    "(was: violated in round 3 of 60)"


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


@pytest.mark.parametrize("old,new,text", [
    pytest.param(2.2853403141361257, 3.0278532608695654,
                 "x_ratio: 2.29 -> 3.03 (+32.5 %)", id="rounded-with-relative-change"),
    pytest.param(18.3, 7.41, "x_ratio: 18.3 -> 7.41 (-59.5 %)", id="drop"),
    pytest.param(0, 0.125, "x_ratio: 0 -> 0.125 (from 0)", id="from-zero"),
])
def test_ratio_rows_are_rounded_with_the_relative_change(make_report, old, new, text):
    base = load_report(make_report("6.1", "pass", metrics={DEFAULT_ID: {"x_ratio": old}}))
    newer = load_report(make_report("6.12", "pass", metrics={DEFAULT_ID: {"x_ratio": new}}))
    (change,) = compare(base, newer).behaviour_changes
    assert change.describe() == f"{DEFAULT_ID} {text}"


def test_noise_threshold_is_adjustable(make_report):
    base = load_report(make_report("6.1", "pass", metrics={DEFAULT_ID: {"x_ratio": 1.0}}))
    newer = load_report(make_report("6.12", "pass", metrics={DEFAULT_ID: {"x_ratio": 1.1}}))
    assert compare(base, newer, noise=0.25).behaviour_changes == []
    assert len(compare(base, newer, noise=0.05).behaviour_changes) == 1


@pytest.mark.parametrize("glob,ids", [
    pytest.param("cancel/*", [OTHER_ID], id="family"),
    pytest.param(DEFAULT_ID, [DEFAULT_ID], id="exact-id-brackets-literal"),
    pytest.param("multishot/recv-peer-close[none,cq=?]", [DEFAULT_ID], id="question-mark"),
    pytest.param("multishot/recv-peer-close[n]", [], id="bracket-is-not-a-set"),
])
def test_filter_matches_ids_like_run_filter(make_report, glob, ids):
    verdicts = {DEFAULT_ID: "pass", OTHER_ID: "fail"}
    comparison = compared(make_report, verdicts, verdicts, id_filter=glob)
    assert [change.id for change in comparison.scenarios] == ids


def test_data_reports_6_1_to_6_18(data_dir):
    comparison = compare(load_report(data_dir / "report-6.1.json"),
                         load_report(data_dir / "report-6.18.json"))
    assert comparison.gating == []
    assert [c.id for c in comparison.of_kind("fix")] == ["cancel/fd-all[none]"]
    assert [c.id for c in comparison.of_kind("new-feature")] == [
        "multishot/timeout-repeat[none]", "multishot/read-multishot[none]"]
    assert comparison.gained["capabilities"] == ["read_multishot", "timeout_multishot"]
    assert [(c.id, c.metric) for c in comparison.behaviour_changes] == [
        ("multishot/cq-overflow[none,cq=8]", "multishot_terminates_on_overflow")]


NOISE_FROM_A_TEST_RUNNER = ("configfile", "rootdir", "test session starts", "PASSED", "passed")


def test_cli_regression_exits_1_and_lists_it_with_evidence(tmp_path, data_dir):
    out = tmp_path / "changes.json"
    run = run_entry_point("compare", data_dir / "report-6.18.json", data_dir / "report-6.1.json",
                          "--json", out, cwd=tmp_path)
    assert run.status == 1, run.stdout + run.stderr
    lines = run.stdout.splitlines()
    assert lines[lines.index("Regressions (1): pass on BASE, broken on NEW") + 1:][:2] == [
        "  cancel/fd-all[none]: pass -> fail: io_uring_prep_cancel(3): IORING_ASYNC_CANCEL_ALL "
        "must cancel every match",
        "    evidence: cancel res 1, expected 2"]
    assert lines[-1].startswith("Result: FAIL: 1 regression, 0 new failures")
    assert not [word for word in NOISE_FROM_A_TEST_RUNNER if word in run.stdout]
    classification = json.loads(out.read_text())
    assert classification["gating"] is True
    assert [r["id"] for r in classification["regressions"]] == ["cancel/fd-all[none]"]
    assert classification["lost"]["opcodes"] == ["READ_MULTISHOT"]
    # Nothing but the requested file is written (no .pytest_cache, no bytecode).
    assert [p.name for p in tmp_path.iterdir()] == ["changes.json"]


def test_cli_default_output_is_the_changes_then_one_summary_line(tmp_path, data_dir):
    run = run_entry_point("compare", data_dir / "report-6.1.json", data_dir / "report-6.18.json",
                          cwd=tmp_path)
    assert run.status == 0, run.stdout + run.stderr
    lines = run.stdout.splitlines()
    headings = [line for line in lines if not line.startswith(" ")]
    assert headings == [
        f"compare 6.1.0-25-amd64 [{data_dir / 'report-6.1.json'}] -> "
        f"6.18.0-1-amd64 [{data_dir / 'report-6.18.json'}]",
        "Fixes (1):", "New features (7):", "Behaviour changes (1): metrics",
        "Result: OK: 0 regressions, 0 new failures, 1 fix, 7 new features, 1 behaviour change; "
        "3 unchanged"]
    assert "  capabilities: read_multishot, timeout_multishot" in lines
    assert "  multishot/cq-overflow[none,cq=8] multishot_terminates_on_overflow: true -> false" \
        in lines
    assert "recv-peer-close" not in run.stdout  # unchanged ids only with -v
    assert list(tmp_path.iterdir()) == []


def test_cli_verbose_lists_every_id_and_empty_groups(data_dir):
    run = run_cli("compare", "-v", data_dir / "report-6.1.json", data_dir / "report-6.18.json")
    assert run.status == 0, run.stderr
    lines = run.stdout.splitlines()
    assert "Regressions: none" in lines and "Not in NEW: none" in lines
    assert lines[lines.index("Unchanged (3):") + 1:][:3] == [
        "  multishot/recv-peer-close[none,cq=8]: pass",
        "  multishot/recv-peer-close[defer_taskrun,cq=8]: pass",
        "  multishot/cq-overflow[none,cq=8]: pass"]
    assert any(line.startswith("  BASE: 6.1.0-25-amd64") for line in lines)


def test_cli_quiet_shows_only_what_gates(make_report):
    run = run_cli("compare", "-q", make_report("6.1", {DEFAULT_ID: "pass", OTHER_ID: "skip"}),
                  make_report("6.12", {DEFAULT_ID: "fail", OTHER_ID: "pass"}))
    assert run.status == 1, run.stderr
    headings = [line for line in run.stdout.splitlines()[1:] if not line.startswith(" ")]
    assert headings == ["Regressions (1): pass on BASE, broken on NEW",
                        "Result: FAIL: 1 regression, 0 new failures, 1 new feature; 0 unchanged"]


def test_cli_lists_known_issues_and_xpass_apart(make_report):
    run = run_cli("compare",
                  make_report("6.1", {DEFAULT_ID: "pass", OTHER_ID: "fail"}),
                  make_report("6.12", {DEFAULT_ID: "fail", OTHER_ID: "pass"},
                              extras={DEFAULT_ID: {"expectation": KNOWN},
                                      OTHER_ID: {"expectation": {**KNOWN, "status": "xpass"}}}))
    assert run.status == 0, run.stdout + run.stderr
    lines = run.stdout.splitlines()
    known = "-ERESTARTSYS leaks into the CQE; https://example.invalid/bug/1; " \
            "expectations/known.toml"
    assert lines[1:5] == [
        "Worth attention (1): a known issue did not happen (xpass)",
        f"  {OTHER_ID}: expected fail, got pass [{known}]",
        "Known issues (1): xfail, not gating",
        f"  {DEFAULT_ID}: pass -> fail: fail: made up by the test [known: {known}]"]
    assert lines[-1] == "Result: OK: 0 regressions, 0 new failures, 1 xpass, 1 known issue, " \
                        "1 fix; 0 unchanged"


@pytest.mark.parametrize("base,new,status", [
    pytest.param("pass", "fail", 1, id="regression"),
    pytest.param("skip", "fail", 1, id="new-failure"),
    pytest.param("fail", "pass", 0, id="fix"),
    pytest.param("pass", "pass", 0, id="unchanged"),
])
def test_cli_exit_status(make_report, base, new, status):
    assert run_cli("compare", make_report("6.1", base), make_report("6.12", new)).status == status


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


@pytest.mark.parametrize("argv", [
    pytest.param(["--noise", "-1"], id="negative-noise"),
    pytest.param(["--noise", "abc"], id="noise-not-a-number"),
    pytest.param(["--noise", "nan%"], id="noise-nan"),
    pytest.param(["-v", "-q"], id="verbose-and-quiet"),
])
def test_cli_rejects_bad_options(make_report, argv):
    run = run_cli("compare", make_report("6.1"), make_report("6.12"), *argv)
    assert run.status == 2 and len(run.error_lines) == 1, run.stderr
