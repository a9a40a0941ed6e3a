"""Continue a run whose guest kernel panicked, with `uring-conform run --resume`.

The panic takes the guest's copy of the run with it, so the host rebuilds the interrupted
run's FILE.jsonl from what the guest streamed: the header, the last word on each result, and a
crash result for the scenario that was running. The runner writes a "start" line before it forks
each scenario, so that is the scenario of the last start line no result followed (the stream
reader's `unfinished`). The next boot carries the file in its initramfs and runs only what it lacks.
"""

import json

from kernel_matrix.common import MatrixError, run_quiet
from kernel_matrix.guest import ANSI_ESCAPE, PANIC

PANIC_EXCERPT_LINES = 40


def supported(binary):
    """Whether this harness build knows --resume (it arrived after the first static builds)."""
    return "--resume" in run_quiet([str(binary), "run", "--help"], "uring-conform run --help")


def describe(binary, scenario_id):
    """family, scenario and params of one id, from `uring-conform list --json`."""
    listing = json.loads(run_quiet([str(binary), "list", "--filter", scenario_id, "--json"],
                                   "uring-conform list --json"))
    for entry in listing:
        if entry["id"] == scenario_id:
            return entry
    raise MatrixError(f"uring-conform list does not know {scenario_id!r}, the scenario the guest started last")


def panic_excerpt(console_text):
    """The console lines up to and including the panic line, without escape codes."""
    lines = [ANSI_ESCAPE.sub("", line).rstrip() for line in console_text.splitlines()]
    last = max((i for i, line in enumerate(lines) if PANIC in line), default=len(lines) - 1)
    return "\n".join(lines[max(0, last + 1 - PANIC_EXCERPT_LINES):last + 1])


def crash_result(entry, run):
    """A result for the scenario the guest kernel panicked in, in the report's result shape."""
    return {
        "id": entry["id"], "family": entry["family"], "scenario": entry["scenario"], "params": entry["params"],
        "verdict": "crash",
        "reason": f"the guest kernel panicked while this scenario ran: {run.panic_line}",
        "duration_ms": 0, "iterations": 0, "metrics": {},
        "evidence": {
            "output_tail": panic_excerpt(run.console_text),
            "notes": [f"verdict set by ci/matrix: the guest panicked after this scenario's start line and before "
                      f"its result; output_tail is the guest console ({run.console_name})"],
        },
    }


def jsonl(header, results, end=None):
    """A harness JSONL file: header, results, and the end line if the run finished."""
    lines = [{"type": "header", **header}] + [{"type": "result", **result} for result in results]
    if end is not None:
        lines.append({"type": "end", **end})
    return "".join(json.dumps(line, ensure_ascii=False) + "\n" for line in lines).encode()
