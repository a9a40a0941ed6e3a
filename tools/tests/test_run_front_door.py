"""Issue 15, the front door of `uring-conform run`, end to end on the self-test build.

What a new user hit: a report path that is a device, a symlink or a missing directory; a
filtered run replacing the full report; a silent Ctrl-C; a new run deleting an interrupted
one; usage mistakes. Each must be one line and a non-zero exit, and never harm a file.
Needs URING_CONFORM_SELFTEST (meson test sets it); skips saying so otherwise.
"""

import json
import os
import signal
import stat
import subprocess
import time

import pytest

from test_harness_kill import complete_result_ids, selftest_binary, wait_until  # noqa: F401 (fixture)

QUICK = "selftest/empty"  # a pass in a few ms


def run(binary, *argv, cwd):
    done = subprocess.run([str(binary), *map(str, argv)], cwd=cwd, capture_output=True, text=True,
                          stdin=subprocess.DEVNULL, timeout=120)
    return done.returncode, done.stdout, done.stderr


def one_error_line(stderr):
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("uring-conform: error: "), stderr
    return lines[0]


@pytest.mark.skipif(os.geteuid() != 0, reason="mknod of a character device needs root (CAP_MKNOD)")
def test_a_device_report_path_is_refused_and_stays_a_device(selftest_binary, tmp_path):
    device = tmp_path / "null"
    os.mknod(device, stat.S_IFCHR | 0o666, os.makedev(1, 3))
    status, _, stderr = run(selftest_binary, "run", "-q", "--filter", QUICK, "--report", device, cwd=tmp_path)
    assert status == 2
    assert "is a device" in one_error_line(stderr)
    assert stat.S_ISCHR(device.stat().st_mode), "the device node was replaced"


def test_a_symlinked_report_is_written_through_the_link(selftest_binary, tmp_path):
    target, link = tmp_path / "target.json", tmp_path / "link.json"
    target.write_text("old")
    link.symlink_to(target.name)
    status, _, stderr = run(selftest_binary, "run", "-q", "--filter", QUICK, "--report", link, cwd=tmp_path)
    assert status == 0, stderr
    assert link.is_symlink(), "the link was replaced by a file"
    assert json.loads(target.read_text())["results"][0]["id"] == QUICK


def test_a_missing_directory_is_one_line_and_not_created(selftest_binary, tmp_path):
    status, _, stderr = run(selftest_binary, "run", "-q", "--filter", QUICK, "--report", "nowhere/r.json",
                            cwd=tmp_path)
    assert status == 2
    assert "does not exist" in one_error_line(stderr)
    assert not (tmp_path / "nowhere").exists()


def test_a_filtered_run_is_named_apart_from_the_full_report(selftest_binary, tmp_path):
    status, stdout, stderr = run(selftest_binary, "run", "-q", "--filter", QUICK, cwd=tmp_path)
    assert status == 0, stderr
    written = sorted(p.name for p in (tmp_path / "reports" / "local").iterdir())
    assert written == [f"{os.uname().release}.filter-selftest-empty.json"]
    assert f"report: reports/local/{written[0]}" in stdout + stderr, "the run must say where the report went"


@pytest.mark.parametrize("argv, says", [
    (["--timeout", "0.5"], "below what selftest/empty needs"),
    (["--seed", "-5"], "--seed -5"),
    (["bogus"], "bogus"),
])
def test_usage_mistakes_are_one_line_and_exit_2(selftest_binary, tmp_path, argv, says):
    status, _, stderr = run(selftest_binary, "run", "-q", "--filter", QUICK, *argv, cwd=tmp_path)
    assert status == 2
    assert says in one_error_line(stderr)
    assert not (tmp_path / "reports").exists(), "nothing is written before the arguments are checked"


def test_a_family_name_as_filter_suggests_its_glob(selftest_binary, tmp_path):
    status, _, stderr = run(selftest_binary, "run", "-q", "--filter", "selftest", cwd=tmp_path)
    assert status == 2
    assert "--filter 'selftest/*'" in one_error_line(stderr)


def test_an_unknown_command_names_the_commands(selftest_binary, tmp_path):
    status, _, stderr = run(selftest_binary, "frobnicate", cwd=tmp_path)
    assert status == 2
    line = one_error_line(stderr)
    assert "frobnicate" in line and "run" in line


def test_ctrl_c_names_the_kept_results_and_a_new_run_keeps_them(selftest_binary, tmp_path):
    report, jsonl = tmp_path / "r.json", tmp_path / "r.json.jsonl"
    # selftest/stuck-read blocks until the watchdog: a reliable moment to interrupt.
    suite = subprocess.Popen([str(selftest_binary), "run", "-q", "--filter", "selftest/*", "--timeout", "5",
                              "--report", str(report)], cwd=tmp_path, stdin=subprocess.DEVNULL,
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        assert wait_until(lambda: jsonl.exists() and complete_result_ids(jsonl), 30), "no result within 30 s"
        time.sleep(0.2)
        suite.send_signal(signal.SIGINT)
        _, stderr = suite.communicate(timeout=30)
    finally:
        if suite.poll() is None:
            suite.kill()
            suite.wait()
    kept = len(complete_result_ids(jsonl))
    # It ends by the signal, as a shell expects of an interrupted command (status 130 there).
    assert suite.returncode == -signal.SIGINT
    assert f"interrupted: {kept} results kept in {report}.jsonl" in stderr, stderr
    assert f"--resume {report}.jsonl" in stderr, stderr
    assert not report.exists()

    before = jsonl.read_bytes()
    status, _, stderr = run(selftest_binary, "run", "-q", "--filter", QUICK, "--report", report, cwd=tmp_path)
    assert status == 2
    line = one_error_line(stderr)
    assert "--resume" in line and "--force" in line, line
    assert jsonl.read_bytes() == before, "the interrupted run was touched"

    status, _, stderr = run(selftest_binary, "run", "-q", "--filter", QUICK, "--report", report, "--force",
                            cwd=tmp_path)
    assert status == 0, stderr
    assert [r["id"] for r in json.loads(report.read_text())["results"]] == [QUICK]
