"""The JSONL stream: its schema and documented examples, reading it, and assemble."""

import json
import re

import pytest

from conftest import TOOLS_DIR, assert_one_line_error, report_document, result, run_cli
from uring_conform.report import load_report
from uring_conform.stream import line_problem, read_stream

STREAM_DOC = TOOLS_DIR.parent / "reports" / "stream.md"


def stream_lines(document, end_duration=None, starts=True):
    """The lines the harness writes for document: header, start + result per result, end."""
    planned = len(document["results"])
    header = {"type": "header", **{key: document[key] for key in
                                   ("schema_version", "tool", "kernel", "liburing", "probe")},
              "run": {key: value for key, value in document["run"].items()
                      if key not in ("duration_s", "ended")},
              "planned": planned}
    lines = [json.dumps(header)]
    for index, entry in enumerate(document["results"]):
        if starts:
            lines.append(start_line(entry["id"], index, planned))
        lines.append(json.dumps({"type": "result", **entry}))
    if end_duration is not None:
        lines.append(json.dumps({"type": "end", "duration_s": end_duration}))
    return lines


def start_line(result_id, index, planned):
    return json.dumps({"type": "start", "id": result_id, "index": index, "planned": planned})


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
    assert "result line dropped: verdict: 'sideways'" in run.stderr
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
    lines[2] = "[ 1.0] {weird} console { noise " + lines[2]
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


def documented_lines():
    """The example stream in reports/stream.md, one JSON object per line."""
    block = re.search(r"```json\n(.*?)```", STREAM_DOC.read_text(), re.S)
    assert block, f"{STREAM_DOC} has no ```json example"
    return [json.loads(line) for line in block.group(1).splitlines()]


def test_documented_example_follows_the_schema():
    lines = documented_lines()
    assert [line["type"] for line in lines] == ["header", "start", "result", "start", "result",
                                                "end"]
    assert [(line, line_problem(line)) for line in lines] == [(line, None) for line in lines]


def test_documented_example_assembles(tmp_path):
    stream = write_stream(tmp_path, [json.dumps(line) for line in documented_lines()])
    out = tmp_path / "report.json"
    run = run_cli("assemble", stream, "-o", out)
    assert run.status == 0, run.stderr
    assert run.stderr == ""
    assert load_report(out).run["ended"] == "complete"


@pytest.mark.parametrize("line,problem", [
    pytest.param({"type": "start", "id": "perf/nop[none]", "index": 0}, "'planned' is a required",
                 id="start-without-planned"),
    pytest.param({"type": "start", "id": "Perf nop", "index": 0, "planned": 1}, "id:",
                 id="start-bad-id"),
    pytest.param({"type": "start", "id": "perf/nop[none]", "index": -1, "planned": 1},
                 "index: -1 violates minimum", id="start-negative-index"),
    pytest.param({"type": "end"}, "'duration_s' is a required", id="end-without-duration"),
    pytest.param({"type": "end", "duration_s": "1"}, "duration_s", id="end-duration-string"),
    pytest.param({"type": "header", "schema_version": 1}, "is a required property",
                 id="header-without-fields"),
    pytest.param({"type": "result", "id": "perf/nop[none]"}, "is a required property",
                 id="result-without-fields"),
])
def test_schema_rejects_broken_lines(line, problem):
    found = line_problem(line)
    assert found is not None and problem in found, found


def test_schema_accepts_unknown_line_types():
    assert line_problem({"type": "progress", "done": 3}) is None


def test_every_complete_line_of_a_real_harness_stream_follows_the_schema(data_dir):
    raw_lines = (data_dir / "host-6.18-killed.stream.jsonl").read_text().splitlines()
    complete = [json.loads(line) for line in raw_lines[:-1]]  # the last line is torn
    assert [line_problem(line) for line in complete] == [None] * len(complete)


def test_start_lines_are_exposed_in_order(tmp_path, two_results):
    contents = read_stream(write_stream(tmp_path, stream_lines(two_results, 1.0)))
    assert [(s["id"], s["index"], s["planned"]) for s in contents.started] == [
        ("multishot/a[none]", 0, 2), ("cancel/b[sqpoll]", 1, 2)]
    assert contents.last_started is None and contents.warnings == []


def test_start_without_result_names_the_scenario_that_was_running(tmp_path, two_results):
    lines = stream_lines(two_results)[:3]  # header, start a, result a
    lines += [start_line("cancel/b[sqpoll]", 1, 2), '{"type": "result", "id": "cancel/b[sq']
    stream = write_stream(tmp_path, lines)
    contents = read_stream(stream)
    assert contents.last_started == "cancel/b[sqpoll]"
    assert contents.unfinished == {"id": "cancel/b[sqpoll]", "index": 1, "planned": 2}
    out = tmp_path / "report.json"
    run = run_cli("assemble", stream, "-o", out)
    assert run.status == 0, run.stderr
    assert "stopped while cancel/b[sqpoll] was running (scenario 2 of 2)" in run.stdout
    assert [r["id"] for r in load_report(out).results] == ["multishot/a[none]"]


def test_stream_without_start_lines_still_assembles(tmp_path, two_results):
    stream = write_stream(tmp_path, stream_lines(two_results, 1.0, starts=False))
    contents = read_stream(stream)
    assert contents.started == [] and contents.last_started is None
    assert len(contents.results) == 2


@pytest.mark.parametrize("start,warning", [
    pytest.param({"type": "start", "id": "cancel/b[sqpoll]", "index": 2, "planned": 2},
                 "index 2 is not below planned 2", id="index-past-plan"),
    pytest.param({"type": "start", "id": "cancel/b[sqpoll]", "index": "1", "planned": 2},
                 "start line dropped: index: '1' violates type", id="index-string"),
])
def test_broken_start_line_is_dropped_with_a_warning(tmp_path, two_results, start, warning):
    lines = stream_lines(two_results, starts=False)
    lines.insert(2, json.dumps(start))
    contents = read_stream(write_stream(tmp_path, lines))
    assert contents.started == [] and contents.last_started is None
    assert len(contents.warnings) == 1 and warning in contents.warnings[0], contents.warnings
