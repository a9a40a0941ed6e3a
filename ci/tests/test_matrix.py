import gzip
import json
import subprocess
from pathlib import Path

import jsonschema
import pytest

from conftest import CI
from kernel_matrix import cli, guest, initramfs, kernels, resume
from kernel_matrix.common import UsageError

REPORT_SCHEMA = CI.parent / "reports" / "report.schema.json"
HEADER = '{"type":"header","kernel":{"release":"6.1.0-56-amd64"},"run":{"filter":"*"},"planned":3}'
APT_NAMES = [
    "linux-image-6.1.0-9-amd64", "linux-image-6.1.0-56-amd64", "linux-image-6.1.0-56-amd64-dbg",
    "linux-image-6.1.0-57-amd64-unsigned", "linux-image-6.1.0-57-cloud-amd64", "linux-image-6.1.0-56-rt-amd64",
    "linux-image-6.12.117+deb12-amd64", "linux-image-6.12.99+deb12-amd64", "linux-image-6.12-amd64",
]


def result_line(scenario_id, verdict="pass"):
    return json.dumps({"type": "result", "id": scenario_id, "verdict": verdict, "duration_ms": 1})


@pytest.mark.parametrize("series,rt,expected", [
    pytest.param("6.1", False, "linux-image-6.1.0-56-amd64", id="6.1-numeric-not-lexical"),
    pytest.param("6.1", True, "linux-image-6.1.0-56-rt-amd64", id="6.1-rt"),
    pytest.param("6.12", False, "linux-image-6.12.117+deb12-amd64", id="6.12-skips-meta-package"),
    pytest.param("6.12", True, None, id="6.12-rt-absent"),
])
def test_newest_picks_generic_flavour_only(series, rt, expected):
    assert kernels.newest(APT_NAMES, series, rt) == expected


@pytest.mark.parametrize("argv", [
    pytest.param(["--profile", "nope"], id="profile"),
    pytest.param(["--timeout", "0"], id="timeout-zero"),
    pytest.param(["--boot-timeout", "-5"], id="boot-timeout-negative"),
    pytest.param(["--max-resumes", "many"], id="max-resumes"),
    pytest.param(["--rt", "6.1"], id="rt-with-kernels"),
    pytest.param(["--frobnicate"], id="unknown-flag"),
])
def test_bad_arguments_are_usage_errors(argv):
    with pytest.raises(UsageError):
        cli.parse_args(argv)


def test_bad_kernel_gives_one_line_and_exit_2():
    done = subprocess.run([str(CI / "matrix"), "7.0"], capture_output=True, text=True)
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and done.stderr.startswith("ci/matrix: kernel '7.0'")


def test_static_elf_check():
    assert initramfs.is_static_elf("/bin/busybox")
    assert not initramfs.is_static_elf("/bin/ls")
    assert not initramfs.is_static_elf(REPORT_SCHEMA)


def test_initramfs_holds_init_harness_console_and_extra_files(tmp_path):
    archive = tmp_path / "initrd.cpio.gz"
    initramfs.build(archive, "/bin/busybox", initramfs.resume_command(), {"resume/r.json.jsonl": b"{}\n"})
    listing = subprocess.run(["cpio", "-itv"], input=gzip.decompress(archive.read_bytes()),
                             capture_output=True, check=True).stdout.decode()
    entries = {line.split()[-1] if "->" not in line else line.split()[-3]: line for line in listing.splitlines()}
    assert entries["dev/console"].startswith("c")
    assert entries["bin/sh"].startswith("l") and entries["bin/busybox"].startswith("-")
    assert "bin/uring-conform" in entries and "resume" in entries and "resume/r.json.jsonl" in entries
    init = subprocess.run(["cpio", "-i", "--to-stdout", "init"], input=gzip.decompress(archive.read_bytes()),
                          capture_output=True, check=True).stdout.decode()
    assert "ip link set lo up" in init and "--resume /resume/r.json.jsonl" in init and "poweroff -f" in init


def test_stream_reader_skips_noise_and_torn_line_and_keeps_last_word(make_run):
    run = make_run([HEADER, "garbage", result_line("f/a", "fail"), result_line("f/a"), '{"type":"result","id":"f/b'])
    assert run.reader.release == "6.1.0-56-amd64"
    assert list(run.reader.results) == ["f/a"] and run.reader.results["f/a"]["verdict"] == "pass"


@pytest.mark.parametrize("stream_end,console,timed_out,qemu_said,ended,detail_has", [
    pytest.param(True, "x\n[    9.1] Kernel panic - not syncing: late\n", False, "", "complete", "",
                 id="end-line-wins"),
    pytest.param(False, "[    2.864726] Kernel panic - not syncing: sysrq triggered crash\n", False, "",
                 "guest-panic", "Kernel panic - not syncing: sysrq triggered crash (console log logs/", id="panic"),
    pytest.param(False, "[1/3] pass\n", True, "", "guest-timeout", "killed after 60s", id="timeout"),
    pytest.param(False, "uring-conform-guest: harness exit status 139\n", False, "qemu: oops", "guest-error",
                 "harness exited without an end line", id="harness-died"),
])
def test_classify(make_run, stream_end, console, timed_out, qemu_said, ended, detail_has):
    run = make_run([HEADER] + (['{"type":"end","duration_s":1}'] if stream_end else []), console)
    guest.classify(run, timed_out, qemu_said, 60)
    assert run.ended == ended and detail_has in run.detail


def test_kernel_trouble_counts_kernel_lines_only(make_run):
    console = ("[1/2] fail  WARNING: harness text, not the kernel\n"
               "[   3.5] WARNING: CPU: 1 PID: 80 at io_uring/io_uring.c:123 io_foo+0x1/0x2\n"
               "uring-conform-guest: kernel tainted 512\n")
    found = guest.kernel_trouble(make_run(console_text=console))
    assert found[0].startswith("1 kernel splat lines") and "io_uring.c:123" in found[0]
    assert "tainted 512" in found[1]


PLANNED = [{"id": f"{family}/s[{n}]", "family": family, "scenario": "s", "params": {"n": n}}
           for family, n in [("a", 1), ("b", 1), ("a", 2)]]


def test_planned_order_groups_families_like_the_runner(monkeypatch):
    monkeypatch.setattr(resume, "run_quiet", lambda *args, **kwargs: json.dumps(PLANNED))
    assert [e["id"] for e in resume.planned_order("uring-conform", "*")] == ["a/s[1]", "a/s[2]", "b/s[1]"]


@pytest.mark.parametrize("finished,expected", [
    pytest.param(set(), "a/s[1]", id="first"),
    pytest.param({"a/s[1]"}, "b/s[1]", id="after-prefix"),
    pytest.param({"a/s[1]", "b/s[1]", "a/s[2]"}, None, id="all-done"),
    pytest.param({"b/s[1]"}, None, id="not-a-prefix"),
])
def test_running_at_panic(finished, expected):
    entry = resume.running_at_panic(PLANNED, finished)
    assert (entry and entry["id"]) == expected


def test_crash_result_fits_the_report_schema(make_run):
    run = make_run(console_text="[ 1.0] BUG: kernel NULL pointer dereference\n"
                                "[ 1.1] Kernel panic - not syncing: Fatal exception\n[ 1.2] after\n")
    run.panic_line = "Kernel panic - not syncing: Fatal exception"
    crash = resume.crash_result(PLANNED[0], run)
    schema = json.loads(REPORT_SCHEMA.read_text())
    jsonschema.validate(crash, {"$defs": schema["$defs"], "$ref": "#/$defs/result"})
    assert crash["verdict"] == "crash" and crash["evidence"]["output_tail"].endswith("Fatal exception")


def test_resume_file_is_header_then_results(make_run):
    text = resume.jsonl({"kernel": {"release": "r"}, "run": {}}, [{"id": "a/s", "verdict": "pass"}]).decode()
    lines = [json.loads(line) for line in text.splitlines()]
    assert [line["type"] for line in lines] == ["header", "result"] and lines[1]["id"] == "a/s"
