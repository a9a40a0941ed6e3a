"""ktap-parse: the kernel's own examples parse; malformed KTAP is rejected with its line."""

import json

import pytest

from conftest import assert_one_line_error, run_cli, run_entry_point
from uring_conform.ktap import KtapError, parse_ktap


def ktap(*lines):
    return "\n".join(lines) + "\n"


def tree(document):
    """(description, status, subtree) tuples, to compare whole trees at a glance."""
    return [(test.description, test.status, tree(test.subtests) if test.subtests else None)
            for test in document.tests]


# Examples from Documentation/dev-tools/ktap.rst (two-space indentation, as written there).
def test_ktap_rst_two_nested_subtests(data_dir):
    document = parse_ktap((data_dir / "ktap" / "ktaprst-two-nested.ktap").read_text())
    assert document.plan == 1
    assert tree(document) == [("example", "fail", [("test_1", "pass", None),
                                                   ("test_2", "fail", None)])]
    assert document.tests[0].diagnostics == ["# example failed"]


def test_ktap_rst_multiple_levels(data_dir):
    document = parse_ktap((data_dir / "ktap" / "ktaprst-multiple-levels.ktap").read_text())
    assert tree(document) == [
        ("example_test_1", "fail", [
            ("test_3", "fail", [("test_1", "fail", None), ("test_2", "pass", None)]),
            ("test_4", "skip", None)]),
        ("example_test_2", "pass", None)]


def test_ktap_rst_example_output(data_dir):
    document = parse_ktap((data_dir / "ktap" / "ktaprst-example-output.ktap").read_text())
    (main_test,) = document.tests
    assert (main_test.description, main_test.status) == ("main_test", "fail")
    first, second, third = main_test.subtests.tests
    assert first.subtests.tests[0].diagnostics == ["# test_1: initializing test_1"]
    assert (second.subtests.tests[0].directive, second.subtests.tests[0].directive_data) == \
        ("SKIP", "test_1 skipped")
    assert [t.status for t in third.subtests.tests] == ["pass", "fail", "skip"]
    assert third.subtests.tests[1].diagnostics == ["# test_2: FAIL"]


def test_ktap_rst_result_lines():
    document = parse_ktap(ktap("KTAP version 1", "1..5", "ok 1 test_case_name",
                               "not ok 2 test_case_name",
                               "ok 3 test # SKIP necessary dependency unavailable",
                               "not ok 4 test # TIMEOUT 30 seconds",
                               "ok 5 check return code # rcode=0"))
    assert [(t.status, t.description, t.directive, t.directive_data) for t in document.tests] == [
        ("pass", "test_case_name", None, ""), ("fail", "test_case_name", None, ""),
        ("skip", "test", "SKIP", "necessary dependency unavailable"),
        ("timeout", "test", "TIMEOUT", "30 seconds"),
        ("pass", "check return code", None, "rcode=0")]


def test_kunit_style_four_space_indent_and_trailing_totals(data_dir):
    document = parse_ktap((data_dir / "ktap" / "kunit-four-space-indent.ktap").read_text())
    (suite,) = document.tests
    assert suite.subtests.header_diagnostics == ["# Subtest: example", "# module: example"]
    assert suite.diagnostics == ["# example: pass:1 fail:1 skip:1 total:3",
                                 "# Totals: pass:1 fail:1 skip:1 total:3"]


def test_unknown_lines_are_kept_aside_and_do_not_count():
    text = ktap("[    0.000000] Linux version 6.1.0", "KTAP version 1", "1..1",
                "random kernel chatter", "ok 1 only")
    document = parse_ktap(text)
    assert [line for line, _ in document.unknown_lines] == [1, 4]
    assert tree(document) == [("only", "pass", None)]


def test_plan_may_be_omitted_unless_required():
    text = ktap("KTAP version 1", "ok 1 a", "ok 2 b")
    assert parse_ktap(text).plan is None
    with pytest.raises(KtapError, match="no plan line"):
        parse_ktap(text, require_plan=True)


def test_older_tap_version_lines_are_accepted():
    assert parse_ktap(ktap("TAP version 13", "1..1", "ok 1 a")).version == "TAP version 13"


MALFORMED = [
    pytest.param(["1..1", "ok 1 a"], 1, "missing KTAP version line", id="missing-version"),
    pytest.param(["boot noise"], 1, "missing KTAP version line", id="only-noise"),
    pytest.param(["KTAP version 2", "1..1", "ok 1 a"], 1, "unsupported version", id="version-2"),
    pytest.param(["  KTAP version 1", "  1..1", "  ok 1 a"], 1, "must not be indented",
                 id="indented-top"),
    pytest.param(["KTAP version 1", "1..3", "ok 1 a", "ok 2 b"], 4, "plan 1..3 (line 2) but 2",
                 id="too-few-results"),
    pytest.param(["KTAP version 1", "1..1", "ok 1 a", "ok 2 b"], 4, "beyond the plan 1..1",
                 id="too-many-results"),
    pytest.param(["KTAP version 1", "1..2", "ok 2 a", "ok 3 b"], 3, "test number 2, expected 1",
                 id="starts-at-2"),
    pytest.param(["KTAP version 1", "1..3", "ok 1 a", "ok 3 b", "ok 4 c"], 4,
                 "test number 3, expected 2", id="skips-a-number"),
    pytest.param(["KTAP version 1", "1..a"], 2, "malformed plan", id="bad-plan"),
    pytest.param(["KTAP version 1", "1..1", "ok one a"], 3, "malformed result line",
                 id="bad-number"),
    pytest.param(["KTAP version 1", "1..1", "not ok"], 3, "malformed result line",
                 id="no-number"),
    pytest.param(["KTAP version 1", "1..1", "ok 1 a", "1..1"], 4, "plan line must directly",
                 id="plan-after-results"),
    pytest.param(["KTAP version 1", "1..1", "  1..1", "  ok 1 x", "ok 1 a"], 3,
                 "a subtest must start with a version line", id="subtest-without-version"),
    pytest.param(["KTAP version 1", "1..1", "  KTAP version 1", "  1..1", "  ok 1 x"], 3,
                 "not followed by its parent's result line", id="subtest-without-parent-result"),
    pytest.param(["KTAP version 1", "1..1", "   KTAP version 1", "   1..1", "   ok 1 x",
                  "ok 1 a"], 3, "expected 2 or 4", id="three-space-indent"),
    pytest.param(["KTAP version 1", "1..1", "  KTAP version 1", "  1..1", "  not ok 1 x",
                  "ok 1 parent"], 6, "is ok but its subtest 1", id="ok-parent-failing-child"),
    pytest.param(["KTAP version 1", "1..1", "ok 1 slow # TIMEOUT 30 seconds"], 3,
                 "'ok' with the TIMEOUT directive", id="ok-timeout"),
    pytest.param(["KTAP version 1", "1..1", "ok 1 a", "KTAP version 1", "1..1", "ok 1 b"], 4,
                 "only one KTAP document", id="two-documents"),
    pytest.param(["KTAP version 1", "1..1", "  KTAP version 1", "  1..1", "  ok 1 x",
                  "  KTAP version 1", "  1..1", "  ok 1 y", "ok 1 a"], 6,
                 "must end with its parent's result line", id="two-subtests-one-result"),
    pytest.param(["KTAP version 1", "1..1", "    KTAP version 1", "    1..1", "    ok 1 x",
                  "  KTAP version 1", "  1..1", "  ok 1 y", "ok 1 a"], 6,
                 "a second subtest block", id="two-subtests-different-indent"),
]


@pytest.mark.parametrize("lines,line,problem", MALFORMED)
def test_malformed_ktap_is_rejected_at_its_line(lines, line, problem):
    with pytest.raises(KtapError) as raised:
        parse_ktap(ktap(*lines), source="out.ktap")
    assert raised.value.source == f"out.ktap:{line}"
    assert problem in raised.value.problem


def test_parent_may_fail_with_skipped_or_xfail_children_only_when_ok():
    text = ktap("KTAP version 1", "1..1", "  KTAP version 1", "  1..2", "  ok 1 x # SKIP no",
                "  not ok 2 y # XFAIL known", "ok 1 parent")
    assert parse_ktap(text).tests[0].status == "pass"


def test_cli_prints_tree_and_counts(data_dir):
    run = run_cli("ktap-parse", data_dir / "ktap" / "ktaprst-example-output.ktap")
    assert run.status == 0, run.stderr
    assert run.stdout.splitlines()[:3] == ["KTAP version 1, plan 1..1", "not ok 1 main_test [fail]",
                                           "  ok 1 example_test_1 [pass]"]
    assert run.stdout.splitlines()[-1] == "fail 1, pass 3, skip 2"


def test_cli_json_tree(data_dir):
    run = run_cli("ktap-parse", "--json", data_dir / "ktap" / "ktaprst-two-nested.ktap")
    node = json.loads(run.stdout)["tests"][0]
    assert (node["description"], node["status"]) == ("example", "fail")
    assert [t["status"] for t in node["subtests"]["tests"]] == ["pass", "fail"]


def test_cli_reports_malformed_input_on_one_line(tmp_path):
    path = tmp_path / "bad.ktap"
    path.write_text(ktap("KTAP version 1", "1..2", "ok 1 a"))
    run = run_cli("ktap-parse", path)
    assert_one_line_error(run, f"{path}:3")
    assert "plan 1..2 (line 2) but 1 test results" in run.stderr


def test_cli_rejects_unknown_lines_on_request(tmp_path):
    path = tmp_path / "noisy.ktap"
    path.write_text(ktap("KTAP version 1", "1..1", "chatter", "ok 1 a"))
    assert run_cli("ktap-parse", path).status == 0
    assert_one_line_error(run_cli("ktap-parse", "--reject-unknown", path), f"{path}:3")


def test_entry_point_reads_stdin():
    run = run_entry_point("ktap-parse", "-", stdin=ktap("KTAP version 1", "1..1", "ok 1 a"))
    assert run.status == 0 and "ok 1 a [pass]" in run.stdout, run.stderr
    run = run_entry_point("ktap-parse", "-", stdin="ok 1 a\n")
    assert_one_line_error(run, "<stdin>:1")
