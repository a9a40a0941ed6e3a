"""export --kcidb: KCIDB v4.2 documents checked against the shipped subset schema."""

import json

import jsonschema
import pytest

from conftest import DEFAULT_ID, assert_one_line_error, run_cli
from uring_conform.cli import kcidb_schema
from uring_conform.export.kcidb import kcidb_path, to_kcidb
from uring_conform.report import load_report


@pytest.fixture(scope="session")
def kcidb_validator():
    schema = kcidb_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def exported(path):
    run = run_cli("export", "--kcidb", path)
    assert run.status == 0, run.stderr
    return json.loads(run.stdout)


def scenario_tests(document):
    return [test for test in document["tests"] if test["path"] != "io_uring"]


def run_test(document):
    (test,) = [test for test in document["tests"] if test["path"] == "io_uring"]
    return test


@pytest.mark.parametrize("report_name", ["report-6.1.json", "report-6.18.json"])
def test_export_of_data_reports_is_valid_kcidb(data_dir, kcidb_validator, report_name):
    document = exported(data_dir / report_name)
    kcidb_validator.validate(document)
    ids = [test["id"] for test in document["tests"]]
    assert len(ids) == len(set(ids))
    assert {test["build_id"] for test in document["tests"]} == {document["builds"][0]["id"]}
    assert document["builds"][0]["checkout_id"] == document["checkouts"][0]["id"]
    assert document["version"] == {"major": 4, "minor": 2}


@pytest.mark.parametrize("verdict,status", [
    ("pass", "PASS"), ("fail", "FAIL"), ("skip", "SKIP"),
    ("error", "ERROR"), ("hang", "ERROR"), ("crash", "ERROR"),
])
def test_verdict_maps_to_kcidb_status(make_report, kcidb_validator, verdict, status):
    document = exported(make_report("6.1", verdict))
    kcidb_validator.validate(document)
    (test,) = scenario_tests(document)
    assert (test["status"], test["misc"]["verdict"]) == (status, verdict)
    assert test["origin"] == "uring_conform"
    assert test["environment"]["misc"]["kernel_release"] == "6.1"


@pytest.mark.parametrize("result_id,path", [
    ("multishot/recv-peer-close[defer_taskrun,cq=8]",
     "io_uring.multishot.recv-peer-close.defer_taskrun_cq_8"),
    ("multishot/recv-peer-close", "io_uring.multishot.recv-peer-close"),
    ("sendzc/notif-order[sqpoll,ratio=0.5]", "io_uring.sendzc.notif-order.sqpoll_ratio_0_5"),
    ("bufring/inc[]", "io_uring.bufring.inc"),
])
def test_path_mapping(result_id, path):
    assert kcidb_path(result_id) == path


@pytest.mark.parametrize("ended,verdicts,status", [
    pytest.param("complete", {DEFAULT_ID: "pass"}, "PASS", id="complete-pass"),
    pytest.param("complete", {DEFAULT_ID: "skip"}, "SKIP", id="complete-skip"),
    pytest.param("complete", {DEFAULT_ID: "pass", "a/b[none]": "hang"}, "ERROR", id="with-hang"),
    pytest.param("interrupted", {DEFAULT_ID: "pass"}, "MISS", id="interrupted"),
    pytest.param("guest-error", {DEFAULT_ID: "pass"}, "MISS", id="guest-error"),
    pytest.param("guest-timeout", {DEFAULT_ID: "pass"}, "ERROR", id="guest-timeout"),
    pytest.param("guest-panic", {DEFAULT_ID: "pass"}, "FAIL", id="guest-panic"),
    pytest.param("interrupted", {DEFAULT_ID: "fail"}, "FAIL", id="interrupted-with-fail"),
])
def test_run_node_status_includes_how_the_run_ended(make_report, kcidb_validator, ended,
                                                     verdicts, status):
    document = exported(make_report("6.1", verdicts,
                                    run={"ended": ended, "ended_detail": "console tail"}))
    kcidb_validator.validate(document)
    assert run_test(document)["status"] == status
    assert run_test(document)["misc"]["ended"] == ended


def test_evidence_goes_to_log_excerpt_and_null_metrics_are_dropped(make_report):
    document = to_kcidb(load_report(make_report(
        "6.1", "fail", reasons={DEFAULT_ID: "io_uring_multishot(7): F_MORE on final CQE"},
        metrics={DEFAULT_ID: {"cqes": 3, "latency_ratio": None}})))
    (test,) = scenario_tests(document)
    assert test["log_excerpt"] == "io_uring_multishot(7): F_MORE on final CQE"
    assert test["misc"]["metrics"] == {"cqes": 3}
    assert test["comment"] == DEFAULT_ID


def test_subset_schema_rejects_what_kcidb_rejects(data_dir, kcidb_validator):
    document = exported(data_dir / "report-6.1.json")
    for field, value in [("status", "HANG"), ("path", "io_uring/multishot"),
                         ("origin", "uring-conform"), ("id", "no-origin-prefix")]:
        broken = json.loads(json.dumps(document))
        broken["tests"][1][field] = value
        assert not kcidb_validator.is_valid(broken), field


def test_output_file_is_not_overwritten_without_force(make_report, tmp_path, kcidb_validator):
    out = tmp_path / "kcidb.json"
    report = make_report("6.1")
    assert run_cli("export", "--kcidb", report, "-o", out).status == 0
    kcidb_validator.validate(json.loads(out.read_text()))
    assert_one_line_error(run_cli("export", "--kcidb", report, "-o", out), out)
    assert run_cli("export", "--kcidb", report, "-o", out, "--force").status == 0


@pytest.mark.parametrize("verdict,iterations,exported_iterations", [
    pytest.param("pass", 0, 1, id="pass-ran-once"),
    pytest.param("fail", 0, 1, id="fail-ran-once"),
    pytest.param("pass", 32, 32, id="pass-looped"),
    pytest.param("hang", 5, 5, id="hang-after-rounds"),
    pytest.param("skip", 0, None, id="skip-never-ran"),
    pytest.param("crash", 0, None, id="crash-uncounted"),
    pytest.param("error", 0, None, id="error-uncounted"),
])
def test_iterations_count_the_runs_of_the_body(make_report, kcidb_validator, verdict,
                                               iterations, exported_iterations):
    document = exported(make_report("6.1", verdict,
                                    extras={DEFAULT_ID: {"iterations": iterations}}))
    kcidb_validator.validate(document)
    (test,) = scenario_tests(document)
    assert test["misc"].get("iterations") == exported_iterations


def test_expectation_and_timing_dependence_ride_along_in_misc(make_report, kcidb_validator):
    expectation = {"status": "xfail", "expected": "fail", "reason": "known",
                   "source": "expectations/known.toml"}
    document = exported(make_report("6.18", "fail", metrics={DEFAULT_ID: {
        "rounds": 60, "violations": 2}}, extras={DEFAULT_ID: {
            "expectation": expectation, "timing_dependent": True}}))
    kcidb_validator.validate(document)
    (test,) = scenario_tests(document)
    assert test["status"] == "FAIL"
    assert test["misc"]["expectation"] == expectation
    assert test["misc"]["timing_dependent"] is True
