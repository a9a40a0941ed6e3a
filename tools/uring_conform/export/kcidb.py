"""Export a report as KCIDB I/O data (schema v4.2) for the KernelCI common database.

KCIDB facts used here, from kernelci/kcidb-io, kcidb_io/schema/v04_02.py (and v03_00.py for
the id patterns):
- the document is {"version": {"major": 4, "minor": N}, "checkouts": [], "builds": [],
  "tests": []}; a test needs "id", "build_id" and "origin", a build "id", "checkout_id" and
  "origin", a checkout "id" and "origin"; no property may be null;
- "origin" matches ^[a-z0-9_]+$ and every id is "<origin>:<anything>";
- a test "path" is dot-separated and matches ^[.a-zA-Z0-9_-]*$;
- test "status" is one of FAIL, ERROR, MISS, PASS, DONE, SKIP (MISS appeared in v4.2, so we
  declare minor 2: the lowest minor that holds everything we emit), in priority order:
    FAIL  - the test completed and reported the tested code as faulty
    ERROR - the test didn't complete due to a failure in its code; status of the code unknown
    MISS  - the test didn't run due to a failure in the test harness
    PASS  - the test completed and reported the tested code as correct
    DONE  - completed without a verdict on the code (e.g. a measurement)
    SKIP  - the test did not run or complete because it was not applicable
- "log_excerpt" is at most 16384 characters; "misc" objects are free-form.

Verdict -> status: pass PASS, fail FAIL, skip SKIP, error ERROR (the host refused something
not under test: the test could not complete, the kernel's status is unknown). hang and crash
are ERROR too: KCIDB keeps FAIL for a test that *completed* and found the code faulty, and a
scenario that timed out or died by a signal did not complete, so the kernel's status is
unknown. The original verdict stays in misc.verdict, and `compare` still counts pass -> hang
or pass -> crash as a regression.

Path mapping: a result id ``family/scenario[variant]`` becomes
``io_uring.<family>.<scenario>.<variant>`` where, in each part, every character outside
[a-zA-Z0-9_-] (the variant's ',' and '=', any '.') becomes '_':
  multishot/recv-peer-close[defer_taskrun,cq=8]
      -> io_uring.multishot.recv-peer-close.defer_taskrun_cq_8
  multishot/recv-peer-close -> io_uring.multishot.recv-peer-close
The mapping is not injective (cq=8 and cq_8 meet), so each test keeps the exact id in
"comment" and misc.scenario_id, and test ids are built from the exact id.

One extra test with path "io_uring" stands for the whole run. Its status is the
highest-priority status of its scenarios, raised by how the run ended: guest-panic FAIL (the
kernel under test panicked), guest-timeout ERROR (the run did not complete; unknown why),
interrupted and guest-error MISS (scenarios did not run because the harness or VM stopped).
"""

import re

ORIGIN = "uring_conform"
KCIDB_VERSION = {"major": 4, "minor": 2}
PATH_ROOT = "io_uring"
MAX_LOG_EXCERPT = 16384
STATUS_PRIORITY = ("FAIL", "ERROR", "MISS", "PASS", "DONE", "SKIP")
VERDICT_STATUS = {"pass": "PASS", "fail": "FAIL", "skip": "SKIP",
                  "error": "ERROR", "hang": "ERROR", "crash": "ERROR"}
ENDED_STATUS = {"complete": None, "guest-panic": "FAIL", "guest-timeout": "ERROR",
                "interrupted": "MISS", "guest-error": "MISS"}

# RFC 3339 date-time, what KCIDB's "format": "date-time" means.
_DATE_TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)$")
_ID_PARTS = re.compile(r"^(?P<family>[^/]+)/(?P<scenario>[^\[]+)(?:\[(?P<variant>[^\]]*)\])?$")


def _path_part(text):
    return re.sub(r"[^a-zA-Z0-9_-]", "_", text)


def kcidb_path(result_id):
    """Dotted KCIDB path for a result id (see the module docstring for the mapping)."""
    match = _ID_PARTS.match(result_id)
    parts = [PATH_ROOT, match["family"], match["scenario"]]
    if match["variant"]:
        parts.append(match["variant"])
    return ".".join(_path_part(part) for part in parts)


def highest_priority(statuses):
    statuses = [status for status in statuses if status]
    return min(statuses, key=STATUS_PRIORITY.index) if statuses else "SKIP"


def _without_nulls(mapping):
    # KCIDB: "no properties can be null"; a null metric means "not measured", i.e. missing.
    return {key: value for key, value in mapping.items() if value is not None}


def _log_excerpt(result):
    evidence = result.get("evidence", {})
    lines = [result["reason"]] if result["reason"] else []
    lines += evidence.get("failures", [])
    if evidence.get("signal"):
        lines.append(f"signal: {evidence['signal']}")
    lines += evidence.get("notes", [])
    text = "\n".join(lines)
    return text[:MAX_LOG_EXCERPT]


def _iterations(result):
    """How many times the scenario's body ran, or None when the report cannot say.

    The harness counts the rounds of a looping body and leaves 0 both for a body that ran
    once and for a scenario that never ran (skipped before the fork, or a hang, crash or
    error decided by the runner). A pass or fail is a verdict the body reached, so it ran at
    least once; for the others 0 is not a count, and KCIDB gets none.
    """
    if result["iterations"] > 0:
        return result["iterations"]
    return 1 if result["verdict"] in ("pass", "fail") else None


def _architecture(machine):
    return re.sub(r"[^a-z0-9_]", "_", machine.lower())


def to_kcidb(report):
    """The KCIDB document for one loaded Report."""
    data = report.data
    kernel, run = data["kernel"], data["run"]
    release = kernel["release"]
    environment_name = run.get("environment") or "host"
    object_id = f"{ORIGIN}:{release}"
    run_id = f"{object_id}:{run['started']}"
    environment = {
        "comment": f"{environment_name}, Linux {release} {kernel['machine']}",
        "misc": {"kernel_release": release, "kernel_version": kernel["version"],
                 "machine": kernel["machine"], "environment": environment_name,
                 "liburing_runtime": data["liburing"]["runtime"],
                 "liburing_compile": data["liburing"]["compile"],
                 "tool_version": data["tool"]["version"],
                 "profile": run["profile"], "seed": run["seed"], "filter": run["filter"]},
    }
    tests = []
    for result in data["results"]:
        misc = {"scenario_id": result["id"], "verdict": result["verdict"],
                "reason": result["reason"], "params": result["params"],
                "metrics": _without_nulls(result["metrics"])}
        runs = _iterations(result)
        if runs is not None:
            misc["iterations"] = runs
        # KCIDB has no status for a known issue: the raw verdict's status stays, and the
        # known-issues entry and the timing dependence ride along for a dashboard to use.
        for optional in ("resumed", "timing_dependent", "expectation"):
            if result.get(optional):
                misc[optional] = result[optional]
        test = {"id": f"{run_id}:{result['id']}", "build_id": object_id, "origin": ORIGIN,
                "path": kcidb_path(result["id"]), "comment": result["id"],
                "status": VERDICT_STATUS[result["verdict"]],
                "duration": result["duration_ms"] / 1000.0,
                "environment": environment, "misc": misc}
        excerpt = _log_excerpt(result)
        if excerpt:
            test["log_excerpt"] = excerpt
        tests.append(test)

    run_status = highest_priority([test["status"] for test in tests]
                                  + [ENDED_STATUS[run["ended"]]])
    run_misc = {"ended": run["ended"], "summary": data["summary"]}
    run_test = {"id": run_id, "build_id": object_id, "origin": ORIGIN, "path": PATH_ROOT,
                "comment": f"uring-conform run on {release}, ended {run['ended']}",
                "status": run_status, "duration": run["duration_s"],
                "environment": environment, "misc": run_misc}
    if _DATE_TIME.match(run["started"]):
        run_test["start_time"] = run["started"]
    if run.get("ended_detail"):
        run_misc["ended_detail"] = run["ended_detail"]
        run_test["log_excerpt"] = run["ended_detail"][:MAX_LOG_EXCERPT]

    return {
        "version": dict(KCIDB_VERSION),
        "checkouts": [{"id": object_id, "origin": ORIGIN, "valid": True,
                       "comment": f"Linux {release} ({kernel['version']})",
                       "misc": {"kernel_release": release, "kernel_version": kernel["version"]}}],
        "builds": [{"id": object_id, "checkout_id": object_id, "origin": ORIGIN, "valid": True,
                    "architecture": _architecture(kernel["machine"]),
                    "comment": f"Linux {release} {kernel['machine']}",
                    "misc": {"kernel_release": release}}],
        "tests": [run_test] + tests,
    }
