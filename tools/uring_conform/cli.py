"""Command line: ``python3 -m uring_conform <command>``; main(argv) returns the exit status.

Exit status: 0 success, 1 compare found a regression, 2 bad input or bad usage (one line
``error: ...`` on stderr, never a traceback).
"""

import argparse
import json
import sys
import textwrap
from pathlib import Path

from uring_conform.errors import InputError

EXIT_OK, EXIT_REGRESSION, EXIT_BAD_INPUT = 0, 1, 2


class UsageError(Exception):
    pass


class ArgumentParser(argparse.ArgumentParser):
    """argparse that reports a usage mistake as one line instead of exiting."""

    def error(self, message):
        raise UsageError(f"{self.prog}: {message} (see --help)")


def _noise(text):
    try:
        value = float(text[:-1]) / 100 if text.endswith("%") else float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not 0 <= value < float("inf"):
        raise argparse.ArgumentTypeError(f"must be 0 or more: {text!r}")
    return value


def _reports_named(arguments):
    """Each argument as a report path; a directory stands for the reports in it."""
    from uring_conform.report import report_paths

    for argument in arguments:
        if Path(argument).is_dir():
            found = report_paths(argument)
            if not found:
                raise InputError(argument, "no reports (<kernel-release>.json) in this directory")
            yield from found
        else:
            yield argument


def cmd_validate(args):
    from uring_conform.report import load_report

    status = EXIT_OK
    for path in _reports_named(args.reports):
        try:
            report = load_report(path)
        except InputError as error:
            print(f"error: {error.one_line()}", file=sys.stderr)
            status = EXIT_BAD_INPUT
            continue
        print(f"ok: {path}: kernel {report.release}, {len(report.results)} results, "
              f"run ended {report.run['ended']}")
    return status


def cmd_assemble(args):
    from uring_conform.stream import assemble_command

    return assemble_command(args.stream, args.output, args.ended, args.ended_detail, args.force)


def cmd_compare(args):
    from uring_conform.compare import compare, render
    from uring_conform.files import write_output
    from uring_conform.report import load_report

    base, new = load_report(args.base), load_report(args.new)
    comparison = compare(base, new, noise=args.noise, id_filter=args.filter)
    if args.json:
        write_output(args.json, json.dumps(comparison.to_json(), indent=2) + "\n", args.force)
    print(render(comparison, verbosity=args.verbose - args.quiet))
    return EXIT_REGRESSION if comparison.gating else EXIT_OK


def cmd_matrix_report(args):
    from uring_conform.files import write_output
    from uring_conform.matrix import HTML_NAME, MD_NAME, render
    from uring_conform.report import load_report, report_paths

    paths = args.reports or report_paths(args.reports_dir)
    if not paths:
        raise InputError(args.reports_dir, "no reports (<kernel-release>.json) found")
    reports = [load_report(path) for path in paths]
    markdown, page = render(reports)
    out_dir = Path(args.out_dir)
    if not out_dir.is_dir():
        raise InputError(out_dir, "output directory does not exist")
    # The matrix files are generated; regenerating them is what this command is for.
    write_output(out_dir / MD_NAME, markdown, force=True)
    write_output(out_dir / HTML_NAME, page, force=True)
    print(f"{out_dir / MD_NAME}, {out_dir / HTML_NAME}: {len(reports)} kernels")
    return EXIT_OK


def cmd_export(args):
    import jsonschema

    from uring_conform.export.kcidb import to_kcidb
    from uring_conform.files import write_output
    from uring_conform.report import describe_schema_error, load_report

    report = load_report(args.report)
    document = to_kcidb(report)
    validator = jsonschema.Draft202012Validator(kcidb_schema())
    error = jsonschema.exceptions.best_match(validator.iter_errors(document))
    if error is not None:
        raise InputError(args.report, "cannot be expressed as KCIDB data: "
                                      f"{describe_schema_error(error)}")
    text = json.dumps(document, indent=2, ensure_ascii=False) + "\n"
    if args.output:
        write_output(args.output, text, args.force)
    else:
        sys.stdout.write(text)
    return EXIT_OK


def kcidb_schema():
    from uring_conform.files import read_json

    return read_json(Path(__file__).with_name("schemas") / "kcidb-v4.2-subset.schema.json")


def cmd_ktap_parse(args):
    from uring_conform.files import read_bytes
    from uring_conform.ktap import count_statuses, parse_ktap, render_tree

    source = "<stdin>" if args.file == "-" else args.file
    try:
        text = read_bytes(args.file).decode("utf-8")
    except UnicodeDecodeError as error:
        raise InputError(source, f"not UTF-8 text (byte {error.start})") from None
    document = parse_ktap(text, source, require_plan=args.require_plan,
                          reject_unknown=args.reject_unknown)
    if args.json:
        print(json.dumps(document.to_dict(), indent=2))
    else:
        print("\n".join(render_tree(document)))
        counts = count_statuses(document)
        print(", ".join(f"{status} {count}" for status, count in sorted(counts.items()))
              or "no tests")
    return EXIT_OK


EPILOG_EXAMPLES = """examples:
  PYTHONPATH=tools python3 -m uring_conform validate reports
  PYTHONPATH=tools python3 -m uring_conform compare reports/6.1.0-57-amd64.json reports/6.18.44-fc-v1045.json
  PYTHONPATH=tools python3 -m uring_conform matrix-report
"""


def build_parser():
    parser = ArgumentParser(
        prog="uring_conform",
        description="Python tools for uring-conform reports (reports/report.schema.json).",
        epilog=EPILOG_EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    def command(name, handler, help_text, description, example):
        # Raw formatting keeps the example's line intact, so the description is wrapped here.
        sub = commands.add_parser(name, help=help_text, description=textwrap.fill(description, 79),
                                  epilog=f"example:\n  {example}",
                                  formatter_class=argparse.RawDescriptionHelpFormatter)
        sub.set_defaults(handler=handler)
        return sub

    validate = command(
        "validate", cmd_validate, "check reports against the schema",
        "Load each report and check it against reports/report.schema.json, plus unique ids and "
        "summary counts. A directory stands for the reports in it (<kernel-release>.json, not "
        "the schemas beside them). Prints 'ok: FILE: ...' per good file; 'error: FILE: "
        "problem' on stderr and exit 2 for any bad one.",
        "python3 -m uring_conform validate reports")
    validate.add_argument("reports", nargs="+", metavar="REPORT|DIR")

    assemble = command(
        "assemble", cmd_assemble, "rebuild a report from a JSONL stream",
        "Rebuild a schema-valid report from the harness's JSONL stream (FILE.jsonl or the "
        "--stream copy a qemu guest sends over a serial port). A torn last line and non-JSON "
        "noise lines are skipped. Without an 'end' line the run counts as interrupted.",
        "python3 -m uring_conform assemble tools/tests/data/guest-panic.stream.jsonl "
        "-o /tmp/6.1.0-25-amd64.json --ended guest-panic "
        "--ended-detail 'Kernel panic - not syncing'")
    assemble.add_argument("stream", metavar="STREAM.jsonl", help="stream file, '-' for stdin")
    assemble.add_argument("-o", "--output", required=True, metavar="REPORT.json")
    assemble.add_argument("--ended", choices=("complete", "interrupted", "guest-panic",
                                              "guest-timeout", "guest-error"),
                          help="how the run ended, when the caller knows better than the "
                               "stream (default: complete if there is an end line, else "
                               "interrupted)")
    assemble.add_argument("--ended-detail", metavar="TEXT", help="free text for run.ended_detail")
    assemble.add_argument("--force", action="store_true", help="overwrite an existing output")

    compare = command(
        "compare", cmd_compare, "what changed between two reports; exit 1 if anything got worse",
        "Classify every scenario id of BASE and NEW. Exit 1 when any id is worse on NEW: "
        "pass -> fail/hang/crash/error (regression), skip -> fail/hang/crash/error or absent "
        "on BASE and failing on NEW (new failure); a result NEW marks xfail (run --expect) is "
        "a known issue and does not gate, an xpass is listed as worth attention. A "
        "timing-dependent fail -> pass is 'not reproduced in N rounds', not a fix. Prints only "
        "what changed, grouped (regressions, new failures, fixes, new features, lost "
        "capabilities, behaviour changes from metrics), then one summary line; -v prints "
        "every id. Exit 0 otherwise, 2 on bad input.",
        "python3 -m uring_conform compare reports/6.1.0-57-amd64.json "
        "reports/6.12.117+deb12-amd64.json --json /tmp/changes.json")
    compare.add_argument("base", metavar="BASE.json")
    compare.add_argument("new", metavar="NEW.json")
    compare.add_argument("--noise", type=_noise, default=0.25, metavar="FRACTION",
                         help="relative change a *_ratio metric must exceed to count as a "
                              "behaviour change: 0.25 or 25%% (default 25%%)")
    compare.add_argument("--filter", metavar="GLOB",
                         help="only compare ids matching GLOB, as run --filter: * and ? are "
                              "wildcards, brackets match themselves (e.g. 'cancel/*')")
    compare.add_argument("--json", metavar="OUT", help="also write the classification as JSON")
    compare.add_argument("--force", action="store_true", help="overwrite an existing --json OUT")
    verbosity = compare.add_mutually_exclusive_group()
    verbosity.add_argument("-v", "--verbose", action="count", default=0,
                           help="every group (also empty ones), the runs' counts and every "
                                "unchanged id")
    verbosity.add_argument("-q", "--quiet", action="count", default=0,
                           help="only what gates or needs attention, and the summary line")

    matrix = command(
        "matrix-report", cmd_matrix_report, "render MATRIX.md and matrix.html",
        "Render the compatibility matrix (rows: scenarios and probed capabilities, columns: "
        "kernels sorted by version) as MATRIX.md and matrix.html with plots. Default input: "
        "every report in REPORTS_DIR, i.e. <kernel-release>.json (reports/local/ is not "
        "read). The output depends only on the reports, so committed files are reproducible.",
        "python3 -m uring_conform matrix-report --out-dir reports")
    matrix.add_argument("reports", nargs="*", metavar="REPORT")
    matrix.add_argument("--reports-dir", default="reports",
                        help="where to find reports when none are named (default: reports)")
    matrix.add_argument("--out-dir", default="reports", help="where to write (default: reports)")

    export = command(
        "export", cmd_export, "export a report as KCIDB JSON",
        "Export a report as KCIDB I/O v4.2 data (checkouts, builds, tests). Status mapping: "
        "pass PASS, fail FAIL, skip SKIP, error/hang/crash ERROR; see "
        "uring_conform/export/kcidb.py for the path mapping and the reasons.",
        "python3 -m uring_conform export --kcidb reports/6.18.44-fc-v1045.json -o /tmp/kcidb.json")
    export.add_argument("--kcidb", dest="report", required=True, metavar="REPORT.json")
    export.add_argument("-o", "--output", metavar="FILE", help="write here instead of stdout")
    export.add_argument("--force", action="store_true", help="overwrite an existing FILE")

    ktap = command(
        "ktap-parse", cmd_ktap_parse, "strictly parse KTAP output",
        "Parse KTAP version 1 output (Documentation/dev-tools/ktap.rst) strictly and print "
        "its test tree. Malformed input (missing version line, wrong plan count, bad "
        "numbering, bad nesting) gives 'error: FILE:LINE: problem' and exit 2.",
        "build/uring-conform run --filter 'perf/nop*' --ktap - | "
        "python3 -m uring_conform ktap-parse -")
    ktap.add_argument("file", metavar="FILE", help="KTAP text, '-' for stdin")
    ktap.add_argument("--json", action="store_true", help="print the tree as JSON")
    ktap.add_argument("--require-plan", action="store_true",
                      help="reject a version line without a plan (ktap.rst allows omitting it)")
    ktap.add_argument("--reject-unknown", action="store_true",
                      help="reject unknown (non-KTAP) lines (ktap.rst allows them)")

    from uring_conform.lava import register_commands
    register_commands(command)  # lava, lava-report
    return parser


def main(argv=None):
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        return args.handler(args)
    except UsageError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except InputError as error:
        print(f"error: {error.one_line()}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except SystemExit as exit_request:  # --help
        return exit_request.code if isinstance(exit_request.code, int) else EXIT_OK
    except BrokenPipeError:
        sys.stderr.close()  # the reader went away (e.g. | head); nothing more to say
        return EXIT_OK
