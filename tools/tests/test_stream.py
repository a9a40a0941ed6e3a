"""assemble: rebuilding a report from the harness's JSONL stream."""

import json

import pytest

from conftest import assert_one_line_error, report_document, result, run_cli
from uring_conform.report import load_report


def stream_lines(document, end_duration=None):
    header = {"type": "header", **{key: document[key] for key in
                                   ("schema_version", "tool", "kernel", "liburing", "probe")},
              "run": {key: value for key, value in document["run"].items()
                      if key not in ("duration_s", "ended")},
              "planned": len(document["results"])}
    lines = [json.dumps(header)]
    lines += [json.dumps({"type": "result", **entry}) for entry in document["results"]]
    if end_duration is not None:
        lines.append(json.dumps({"type": "end", "duration_s": end_duration}))
    return lines


@pytest.fixture
def two_results():
    return report_document("6.1", {"multishot/a[none]": "pass", "cancel/b[sqpoll]": "fail"})


def write_stream(tmp_path, lines, name="run.jsonl"):
    path = tmp_path / name
    path.write_text("\n".join(lines) + "\n")
    return path


def test_complete_stream_gives_complete_report(tmp_path, two_results):
    stream = write_stream(tmp_path, stream_lines(two_results, end_duration=2.5))
    out = tmp_path / "report.json"
    run = run_cli("assemble", stream, "-o", out)
    assert run.status == 0, run.stderr
    report = load_report(out)
    assert report.run["ended"] == "complete"
    assert report.run["duration_s"] == 2.5
    assert [r["id"] for r in report.results] == ["multishot/a[none]", "cancel/b[sqpoll]"]
    assert report.data["summary"] == {"total": 2, "pass": 1, "fail": 1, "skip": 0, "hang": 0,
                                      "crash": 0, "error": 0}
    assert "planned" not in report.data


def test_panicked_guest_stream_keeps_every_finished_result(tmp_path, data_dir):
    out = tmp_path / "6.1.json"
    run = run_cli("assemble", data_dir / "guest-panic.stream.jsonl", "-o", out)
    assert run.status == 0, run.stderr
    report = load_report(out)
    # The torn last line is dropped; the line with console noise in front of it is kept.
    assert [r["id"] for r in report.results] == [
        "multishot/recv-peer-close[none,cq=8]", "multishot/recv-peer-close[defer_taskrun,cq=8]",
        "multishot/cq-overflow[none,cq=8]", "multishot/timeout-repeat[none]"]
    assert report.run["ended"] == "interrupted"
    assert report.run["duration_s"] == pytest.approx((12.5 + 11.0 + 30.0 + 0) / 1000)
    assert "3 noise lines skipped" in run.stdout  # two console lines and the torn one


def test_caller_says_how_the_guest_ended(tmp_path, data_dir):
    out = tmp_path / "6.1.json"
    run = run_cli("assemble", data_dir / "guest-panic.stream.jsonl", "-o", out,
                  "--ended", "guest-panic", "--ended-detail", "Kernel panic - not syncing: x")
    assert run.status == 0, run.stderr
    assert load_report(out).run["ended"] == "guest-panic"
    assert load_report(out).run["ended_detail"] == "Kernel panic - not syncing: x"


def test_existing_output_is_not_overwritten_without_force(tmp_path, two_results):
    stream = write_stream(tmp_path, stream_lines(two_results, end_duration=1))
    out = tmp_path / "report.json"
    out.write_text("precious")
    assert_one_line_error(run_cli("assemble", stream, "-o", out), out)
    assert out.read_text() == "precious"
    assert run_cli("assemble", stream, "-o", out, "--force").status == 0
    assert load_report(out).run["ended"] == "complete"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.json", "run.jsonl"]


def test_output_may_not_be_the_stream_itself(tmp_path, two_results):
    stream = write_stream(tmp_path, stream_lines(two_results))
    assert_one_line_error(run_cli("assemble", stream, "-o", stream, "--force"), stream)


@pytest.mark.parametrize("lines", [
    pytest.param([], id="empty"),
    pytest.param(["not json", '{"type": "result"}'], id="no-header"),
    pytest.param(['{"type": "header", "schema_version": 1}'], id="header-without-fields"),
])
def test_stream_without_usable_header_is_bad_input(tmp_path, lines):
    stream = write_stream(tmp_path, lines)
    out = tmp_path / "report.json"
    assert_one_line_error(run_cli("assemble", stream, "-o", out), stream)
    assert not out.exists()


def test_repeated_result_keeps_the_later_line_in_first_position(tmp_path, two_results):
    lines = stream_lines(two_results)
    rerun = result("multishot/a[none]", "hang", resumed=True)
    lines.append(json.dumps({"type": "result", **rerun}))
    out = tmp_path / "report.json"
    assert run_cli("assemble", write_stream(tmp_path, lines), "-o", out).status == 0
    results = load_report(out).results
    assert [(r["id"], r["verdict"]) for r in results] == [("multishot/a[none]", "hang"),
                                                          ("cancel/b[sqpoll]", "fail")]


def test_schema_invalid_result_line_is_dropped_with_a_warning(tmp_path, two_results):
    lines = stream_lines(two_results)
    lines.insert(2, json.dumps({"type": "result", **result("multishot/c[none]", "sideways")}))
    out = tmp_path / "report.json"
    run = run_cli("assemble", write_stream(tmp_path, lines), "-o", out)
    assert run.status == 0
    assert "result dropped: verdict: 'sideways'" in run.stderr
    assert len(run.stderr.splitlines()) == 1
    assert len(load_report(out).results) == 2


def test_crlf_from_a_serial_line_is_tolerated(tmp_path, two_results):
    stream = tmp_path / "tty.jsonl"
    stream.write_bytes(("\r\n".join(stream_lines(two_results, 1.0)) + "\r\n").encode())
    out = tmp_path / "report.json"
    assert run_cli("assemble", stream, "-o", out).status == 0
    assert load_report(out).run["ended"] == "complete"


def test_noise_in_front_of_a_line_with_braces_in_it(tmp_path, two_results):
    lines = stream_lines(two_results, 1.0)
    lines[1] = "[ 1.0] {weird} console { noise " + lines[1]
    out = tmp_path / "report.json"
    run = run_cli("assemble", write_stream(tmp_path, lines), "-o", out)
    assert run.status == 0, run.stderr
    assert len(load_report(out).results) == 2


def test_stream_written_by_the_harness_and_cut_by_a_kill(tmp_path, data_dir):
    """A real stream from `uring-conform run --stream` (host 6.18), cut mid-line: pins the
    contract between the C++ writer and this reader."""
    out = tmp_path / "report.json"
    run = run_cli("assemble", data_dir / "host-6.18-killed.stream.jsonl", "-o", out)
    assert run.status == 0, run.stderr
    report = load_report(out)
    assert report.release == "6.18.44-fc-v657"
    assert report.run["ended"] == "interrupted"
    assert [r["id"] for r in report.results] == [
        "multishot/recv-peer-close[none,cq=8]", "multishot/recv-peer-close[none,cq=256]",
        "multishot/recv-peer-close[coop_taskrun,cq=8]"]
