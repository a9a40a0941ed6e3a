"""validate: schema and consistency checks, and the one-line error contract."""

import json

import pytest

from conftest import DEFAULT_ID, assert_one_line_error, report_document, result, run_cli
from uring_conform.report import kernel_sort_key, load_report, schema_problem


def test_hand_written_reports_are_valid(data_dir, schema):
    assert schema["properties"]["schema_version"] == {"const": 1}
    for path in sorted(data_dir.glob("report-*.json")):
        assert schema_problem(json.loads(path.read_text())) is None, path


def test_validate_prints_one_ok_line_per_report(data_dir):
    run = run_cli("validate", *sorted(data_dir.glob("report-*.json")))
    assert run.status == 0, run.stderr
    assert [line.split(":")[0] for line in run.stdout.splitlines()] == ["ok", "ok"]
    assert "kernel 6.1.0-25-amd64, 5 results, run ended complete" in run.stdout


def test_validate_goes_on_after_a_bad_file(tmp_path, make_report):
    good = make_report("6.1")
    bad = tmp_path / "bad.json"
    bad.write_text("{")
    run = run_cli("validate", bad, good)
    assert_one_line_error(run, bad)
    assert run.stdout.startswith(f"ok: {good}")


def _without(document, *keys):
    target = document
    for key in keys[:-1]:
        target = target[key]
    del target[keys[-1]]
    return document


def _set(document, value, *keys):
    target = document
    for key in keys[:-1]:
        target = target[key]
    target[keys[-1]] = value
    return document


INVALID_DOCUMENTS = [
    pytest.param(lambda d: _without(d, "probe"), "'probe' is a required property",
                 id="missing-probe"),
    pytest.param(lambda d: _set(d, "maybe", "results", 0, "verdict"), "results[0].verdict",
                 id="unknown-verdict"),
    pytest.param(lambda d: _set(d, 2, "schema_version"), "schema_version", id="schema-version-2"),
    pytest.param(lambda d: _set(d, "6.1/bad id", "results", 0, "id"), "results[0].id",
                 id="id-pattern"),
    pytest.param(lambda d: _set(d, {"nested": 1}, "results", 0, "metrics", "x"),
                 "results[0].metrics.x", id="metric-object"),
    pytest.param(lambda d: _set(d, [result(DEFAULT_ID, "pass")] * 2, "results"),
                 "duplicate id", id="duplicate-id"),
    pytest.param(lambda d: _set(d, 3, "summary", "pass"), "summary.pass is 3 but 1",
                 id="summary-count"),
    pytest.param(lambda d: _set(d, 5, "summary", "total"), "summary.total is 5",
                 id="summary-total"),
    pytest.param(lambda d: _set(d, "cancel", "results", 0, "family"),
                 "does not start with family/scenario", id="family-mismatch"),
    pytest.param(lambda d: [d], "top level is a JSON list", id="not-an-object"),
]


@pytest.mark.parametrize("corrupt,problem", INVALID_DOCUMENTS)
def test_invalid_report_gives_one_line_naming_file_and_problem(tmp_path, corrupt, problem):
    path = tmp_path / "report.json"
    path.write_text(json.dumps(corrupt(report_document("6.1"))))
    run = run_cli("validate", path)
    assert_one_line_error(run, path)
    assert problem in run.stderr


@pytest.mark.parametrize("content,problem", [
    pytest.param(b"", "empty file", id="empty"),
    pytest.param(b'{"schema_version": 1, "tool": {', "not valid JSON", id="truncated"),
    pytest.param(b'{"a": NaN}', "NaN is not valid JSON", id="nan"),
    pytest.param(b'{"a": 1, "a": 2}', "duplicate key 'a'", id="duplicate-key"),
    pytest.param(b"\xff\xfe{}", "not UTF-8", id="binary"),
    pytest.param(b"[" * 100000, "not valid JSON", id="deep-nesting"),
])
def test_unreadable_json_gives_one_line(tmp_path, content, problem):
    path = tmp_path / "report.json"
    path.write_bytes(content)
    run = run_cli("validate", path)
    assert_one_line_error(run, path)
    assert problem in run.stderr


def test_missing_file_and_directory_give_one_line(tmp_path):
    missing = tmp_path / "nope.json"
    assert_one_line_error(run_cli("validate", missing), missing)
    assert_one_line_error(run_cli("validate", tmp_path), tmp_path)


def test_load_report_exposes_results_by_id(make_report):
    report = load_report(make_report("6.12", {DEFAULT_ID: "pass", "cancel/fd-all[none]": "fail"}))
    assert report.release == "6.12"
    assert report.results_by_id()["cancel/fd-all[none]"]["verdict"] == "fail"


def test_kernel_releases_sort_by_version():
    releases = ["6.18.0", "6.12.9+deb12-amd64", "6.1.0-28-amd64", "6.1.0-25-amd64",
                "6.12.10+deb12-amd64", "5.15.0"]
    assert sorted(releases, key=kernel_sort_key) == [
        "5.15.0", "6.1.0-25-amd64", "6.1.0-28-amd64", "6.12.9+deb12-amd64",
        "6.12.10+deb12-amd64", "6.18.0"]


EXPECTATION = {"status": "xfail", "expected": "fail", "reason": "known -ERESTARTSYS leak",
               "link": "https://example.invalid/bug", "source": "expectations/known.toml"}


@pytest.mark.parametrize("extra,problem", [
    pytest.param({"timing_dependent": True, "metrics": {"rounds": 60, "violations": 0}}, None,
                 id="timing-dependent-with-rounds"),
    pytest.param({"timing_dependent": False}, None, id="not-timing-dependent"),
    pytest.param({"timing_dependent": True, "metrics": {"violations": 0}},
                 "'rounds' is a required property", id="timing-dependent-without-rounds"),
    pytest.param({"timing_dependent": True, "metrics": {"rounds": 0, "violations": 0}},
                 "metrics.rounds: 0 violates minimum", id="timing-dependent-zero-rounds"),
    pytest.param({"timing_dependent": "yes"}, "timing_dependent", id="timing-dependent-string"),
    pytest.param({"expectation": EXPECTATION}, None, id="expectation-xfail"),
    pytest.param({"expectation": {**EXPECTATION, "status": "xpass"}}, None,
                 id="expectation-xpass"),
    pytest.param({"expectation": {**EXPECTATION, "status": "known"}},
                 "expectation.status: 'known' violates enum", id="expectation-bad-status"),
    pytest.param({"expectation": {**EXPECTATION, "expected": "broken"}},
                 "expectation.expected: 'broken' violates enum",
                 id="expectation-bad-verdict"),
    pytest.param({"expectation": {"status": "xfail", "expected": "fail"}},
                 "'reason' is a required property", id="expectation-without-reason"),
])
def test_optional_result_fields(extra, problem):
    document = report_document("6.18", "fail")
    document["results"][0].update(extra)
    found = schema_problem(document)
    if problem is None:
        assert found is None
    else:
        assert found is not None and problem in found, found


def test_verdicts_are_the_schema_enum_in_its_order(schema):
    from uring_conform.report import BROKEN_VERDICTS, VERDICTS

    assert VERDICTS == ("pass", "fail", "skip", "hang", "crash", "error")
    assert list(VERDICTS) == schema["$defs"]["verdict"]["enum"]
    assert BROKEN_VERDICTS == ("fail", "hang", "crash", "error")


def test_validate_a_directory_checks_its_reports_not_the_schemas(tmp_path, make_report, schema):
    reports = tmp_path / "reports"
    (reports / "local").mkdir(parents=True)
    make_report("6.1.0-56-amd64").rename(reports / "6.1.0-56-amd64.json")
    make_report("6.99").rename(reports / "local" / "6.99.json")
    (reports / "report.schema.json").write_text(json.dumps(schema))
    (reports / "kernel-splats.json").write_text('[{"kind": "warn", "prefix": "WARNING:"}]')
    run = run_cli("validate", reports)
    assert run.status == 0, run.stderr
    assert run.stdout.splitlines() == [f"ok: {reports / '6.1.0-56-amd64.json'}: kernel "
                                       "6.1.0-56-amd64, 1 results, run ended complete"]


def test_validate_a_directory_without_reports_is_one_line(tmp_path):
    assert_one_line_error(run_cli("validate", tmp_path), tmp_path)
