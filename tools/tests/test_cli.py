"""The command line itself: --help everywhere, usage mistakes, the real entry point."""

import pytest

from conftest import assert_one_line_error, run_cli, run_entry_point

COMMANDS = ["validate", "assemble", "compare", "matrix-report", "export", "ktap-parse"]


@pytest.mark.parametrize("command", [None] + COMMANDS)
def test_help_is_available_everywhere(command):
    run = run_cli(*([command] if command else []), "--help")
    assert run.status == 0
    assert "usage:" in run.stdout and "example" in run.stdout


@pytest.mark.parametrize("argv", [
    pytest.param([], id="no-command"),
    pytest.param(["frobnicate"], id="unknown-command"),
    pytest.param(["validate"], id="missing-argument"),
    pytest.param(["assemble", "x.jsonl"], id="assemble-without-output"),
    pytest.param(["assemble", "x.jsonl", "-o", "y", "--ended", "exploded"], id="bad-ended"),
    pytest.param(["export", "r.json"], id="export-without-format"),
    pytest.param(["validate", "--bogus", "r.json"], id="unknown-flag"),
])
def test_usage_mistakes_give_one_line_and_exit_2(argv):
    run = run_cli(*argv)
    assert run.status == 2
    assert len(run.error_lines) == 1 and run.error_lines[0].startswith("error: uring_conform")


def test_entry_point_help():
    run = run_entry_point("--help")
    assert run.status == 0 and "matrix-report" in run.stdout


def test_entry_point_bad_report_is_one_line(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text('{"schema_version": 1, "tool"')
    assert_one_line_error(run_entry_point("validate", bad), bad)
    assert_one_line_error(run_entry_point("export", "--kcidb", bad), bad)
