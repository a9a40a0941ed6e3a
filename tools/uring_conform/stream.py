"""Read the JSONL stream the harness writes while it runs, and rebuild a report from it.

The format is reports/stream.md, each line checked against reports/stream.schema.json: a
"header" line, a "start" line right before each scenario instance runs, a "result" line
when it finished, and an "end" line when the run completed. A guest that panics or is killed
leaves a stream without "end", maybe with a torn last line, and with a "start" that no
"result" follows (the scenario that was running); a serial console may mix kernel messages
into it. So every line that is not a complete JSON object of a known type is noise and
skipped; a line with noise in front of the JSON object is read from where it starts. A line
of a known type that breaks the schema is dropped with a warning.
"""

import json
import sys
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from urllib.parse import urljoin

import jsonschema

from uring_conform.errors import InputError
from uring_conform.files import parse_json, read_bytes, read_json, write_output
from uring_conform.report import (REPO_ROOT, VERDICTS, check_document, schema_path,
                                  schema_problem)

STREAM_SCHEMA_PATH = REPO_ROOT / "reports" / "stream.schema.json"
LINE_TYPES = ("header", "start", "result", "end")

ENDINGS = ("complete", "interrupted", "guest-panic", "guest-timeout", "guest-error")
# Copied from the header into the report, as the harness's ReportWriter::finish does.
HEADER_KEYS = ("schema_version", "tool", "kernel", "liburing", "probe")
# How many '{' positions on one line are tried as the start of the JSON object.
MAX_START_CANDIDATES = 16


@dataclass
class StreamContents:
    header: dict = None
    header_problem: str = None  # why the first header line breaks the schema, if it does
    started: list = field(default_factory=list)   # every valid start line, in stream order
    results: dict = field(default_factory=dict)   # id -> result, in first-seen order
    end: dict = None
    noise_lines: int = 0
    replaced_results: int = 0
    warnings: list = field(default_factory=list)
    unfinished: dict = None  # the last start line when no result for its id follows it

    @property
    def last_started(self):
        """Id of the scenario that was running when the stream stopped, or None."""
        return self.unfinished["id"] if self.unfinished else None


def _decode_line(raw):
    """The JSON object on one raw line, or None when the line is noise.

    When the whole line does not parse, the object may start at a later '{' (console noise
    in front of it); the first few candidates are tried.
    """
    starts = [0] + [index for index in range(1, len(raw)) if raw[index:index + 1] == b"{"]
    for start in starts[:MAX_START_CANDIDATES]:
        try:
            value = parse_json(raw[start:].decode("utf-8").strip())
        except (ValueError, UnicodeDecodeError, RecursionError):
            continue
        if isinstance(value, dict) and value.get("type") in LINE_TYPES:
            return value
    return None


@lru_cache(maxsize=4)
def _stream_validator(stream_schema_path, report_schema_path):
    stream_schema = read_json(stream_schema_path)
    # The stream schema refers to "report.schema.json#/$defs/..." relative to its own $id;
    # the report schema in use (maybe $URING_CONFORM_SCHEMA's copy) answers for that URI.
    report_uri = urljoin(stream_schema["$id"], "report.schema.json")
    report_schema = {**read_json(report_schema_path), "$id": report_uri}
    resolver = jsonschema.RefResolver(stream_schema["$id"], stream_schema,
                                      store={report_uri: report_schema})
    return jsonschema.Draft202012Validator(stream_schema, resolver=resolver)


def stream_validator():
    """Checks one stream line (with its "type") against reports/stream.schema.json."""
    return _stream_validator(str(STREAM_SCHEMA_PATH), str(schema_path()))


def line_problem(line):
    """Why one decoded stream line breaks the stream schema (one line), or None."""
    return schema_problem(line, stream_validator())


def read_stream(path):
    """Parse a stream file into its header, start lines, results (deduplicated by id), end."""
    contents = StreamContents()
    for number, raw in enumerate(read_bytes(path).split(b"\n"), start=1):
        if not raw.strip():
            continue
        line = _decode_line(raw)
        if line is None:
            contents.noise_lines += 1
            continue
        problem = line_problem(line)
        kind = line.pop("type")
        if kind == "header":
            if contents.header is None:
                contents.header, contents.header_problem = line, problem
            else:
                contents.warnings.append(f"{path}:{number}: second header ignored")
        elif problem:
            contents.warnings.append(f"{path}:{number}: {kind} line dropped: {problem}")
        elif kind == "start":
            if line["index"] >= line["planned"]:
                contents.warnings.append(f"{path}:{number}: start line dropped: index "
                                         f"{line['index']} is not below planned "
                                         f"{line['planned']}")
                continue
            contents.started.append(line)
            contents.unfinished = line
        elif kind == "result":
            # A resumed run may repeat a result; the later line is the newer word on it.
            if line["id"] in contents.results:
                contents.replaced_results += 1
            contents.results[line["id"]] = line
            if contents.unfinished and contents.unfinished["id"] == line["id"]:
                contents.unfinished = None
        else:
            contents.end = line
            contents.unfinished = None
    return contents


def summarize(results):
    summary = {"total": len(results)}
    for verdict in VERDICTS:
        summary[verdict] = sum(1 for result in results if result["verdict"] == verdict)
    return summary


def _duration_s(contents, results):
    end_duration = (contents.end or {}).get("duration_s")
    if isinstance(end_duration, (int, float)) and not isinstance(end_duration, bool) \
            and end_duration >= 0:
        return end_duration
    return round(sum(result["duration_ms"] for result in results) / 1000.0, 6)


def assemble(path, ended=None, ended_detail=None):
    """Build a schema-valid report from a stream file.

    ended: how the run stopped, as the caller knows it (e.g. "guest-panic"); by default
    "complete" when the stream has an end line and "interrupted" otherwise.
    """
    contents = read_stream(path)
    if contents.header is None:
        raise InputError(path, "no header line: cannot rebuild a report from this stream")
    header = contents.header
    if contents.header_problem:
        raise InputError(path, f"header line: {contents.header_problem}")

    results = list(contents.results.values())
    report = {key: header[key] for key in HEADER_KEYS}
    run = dict(header["run"])
    run["duration_s"] = _duration_s(contents, results)
    run["ended"] = ended or ("complete" if contents.end is not None else "interrupted")
    if ended_detail:
        run["ended_detail"] = ended_detail
    report["run"] = run
    report["results"] = results
    report["summary"] = summarize(results)
    check_document(path, report)
    return report, contents


def assemble_command(stream_path, output_path, ended, ended_detail, force):
    """The CLI's assemble: returns exit status; warnings go to stderr, one line each."""
    if str(stream_path) != "-" and Path(output_path).resolve() == Path(stream_path).resolve():
        raise InputError(output_path, "is the input stream; choose another output file")
    report, contents = assemble(stream_path, ended, ended_detail)
    text = json.dumps(report, indent=2, ensure_ascii=False) + "\n"
    write_output(output_path, text, force=force)
    for warning in contents.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    replaced = f", {contents.replaced_results} repeated results replaced" \
        if contents.replaced_results else ""
    print(f"{output_path}: {len(report['results'])} results, run ended {report['run']['ended']}"
          f" ({contents.noise_lines} noise lines skipped{replaced})")
    if contents.unfinished:
        running = contents.unfinished
        print(f"{output_path}: the run stopped while {running['id']} was running "
              f"(scenario {running['index'] + 1} of {running['planned']}); it has no result")
    return 0
