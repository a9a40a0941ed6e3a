"""Rebuild a report from the JSONL stream the harness writes while it runs.

The stream format is in notes/interfaces.md: a "header" line, one "result" line per finished
scenario variant, and an "end" line when the run completed. A guest that panics or is killed
leaves a stream without "end" and maybe with a torn last line; a serial console may mix
kernel messages into it. So every line that is not a complete JSON object of a known type is
noise and skipped; a line with noise in front of the JSON object is read from where it starts.
"""

import json
import sys
from dataclasses import dataclass, field
from pathlib import Path

import jsonschema

from uring_conform.errors import InputError
from uring_conform.files import parse_json, read_bytes, write_output
from uring_conform.report import VERDICTS, check_document, report_validator, schema_problem

ENDINGS = ("complete", "interrupted", "guest-panic", "guest-timeout", "guest-error")
# Copied from the header into the report, as the harness's ReportWriter::finish does.
HEADER_KEYS = ("schema_version", "tool", "kernel", "liburing", "probe")
# How many '{' positions on one line are tried as the start of the JSON object.
MAX_START_CANDIDATES = 16


@dataclass
class StreamContents:
    header: dict = None
    results: dict = field(default_factory=dict)   # id -> result, in first-seen order
    end: dict = None
    noise_lines: int = 0
    replaced_results: int = 0
    warnings: list = field(default_factory=list)


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
        if isinstance(value, dict) and value.get("type") in ("header", "result", "end"):
            return value
    return None


def _result_validator():
    """Checks one result line against the report schema's definition of a result."""
    definitions = report_validator().schema["$defs"]
    return jsonschema.Draft202012Validator({"$defs": definitions, "$ref": "#/$defs/result"})


def read_stream(path):
    """Parse a stream file into its header, results (deduplicated by id) and end line."""
    contents = StreamContents()
    result_validator = _result_validator()
    for number, raw in enumerate(read_bytes(path).split(b"\n"), start=1):
        if not raw.strip():
            continue
        line = _decode_line(raw)
        if line is None:
            contents.noise_lines += 1
            continue
        kind = line.pop("type")
        if kind == "header":
            if contents.header is None:
                contents.header = line
            else:
                contents.warnings.append(f"{path}:{number}: second header ignored")
        elif kind == "result":
            problem = schema_problem(line, result_validator)
            if problem:
                contents.warnings.append(f"{path}:{number}: result dropped: {problem}")
                continue
            # A resumed run may repeat a result; the later line is the newer word on it.
            if line["id"] in contents.results:
                contents.replaced_results += 1
            contents.results[line["id"]] = line
        else:
            contents.end = line
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
    missing = [key for key in HEADER_KEYS + ("run",) if key not in header]
    if missing:
        raise InputError(path, f"header line lacks {', '.join(missing)}")
    if not isinstance(header["run"], dict):
        raise InputError(path, "header line: run is not an object")

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
    return 0
