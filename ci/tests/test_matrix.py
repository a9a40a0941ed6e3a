import gzip
import json
import os
import subprocess
from types import SimpleNamespace

import jsonschema
import pytest

from conftest import CI, needs_cpio, needs_static_busybox, result_line, start_line
from kernel_matrix import cli, guest, initramfs, resume
from kernel_matrix.common import SPLATS_FILE, UsageError

REPORT_SCHEMA = CI.parent / "reports" / "report.schema.json"


@pytest.mark.parametrize("argv", [
    pytest.param(["--profile", "nope"], id="profile"),
    pytest.param(["--timeout", "0"], id="timeout-zero"),
    pytest.param(["--boot-timeout", "-5"], id="boot-timeout-negative"),
    pytest.param(["--max-resumes", "many"], id="max-resumes"),
    pytest.param(["--rt", "6.1"], id="rt-with-kernels"),
    pytest.param(["--frobnicate"], id="unknown-flag"),
    pytest.param(["6.13"], id="unknown-series"),
    pytest.param(["6.12-latest"], id="unknown-series-end"),
    pytest.param(["--kernel-config", "a", "--kernel-config", "b", "--kernel-image", "i"], id="configs-past-images"),
])
def test_bad_arguments_are_usage_errors(argv):
    with pytest.raises(UsageError):
        cli.parse_args(argv)


@pytest.mark.parametrize("argv,said", [
    pytest.param(["7.0"], "ci/matrix: kernel '7.0'", id="bad-kernel"),
    pytest.param(["--kernel-image", "/nonexistent/bzImage"], "ci/matrix: --kernel-image /nonexistent/bzImage",
                 id="missing-image"),
])
def test_usage_is_checked_before_the_host(tmp_path, argv, said):
    """Exit 2 with one line even where qemu and apt are not on PATH (issue 15)."""
    done = subprocess.run([str(CI / "matrix"), *argv], capture_output=True, text=True,
                          env=dict(os.environ, PATH=str(tmp_path)))
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and done.stderr.startswith(said)


def test_missing_host_tool_is_exit_1_naming_it(tmp_path):
    done = subprocess.run([str(CI / "matrix"), "6.1"], capture_output=True, text=True,
                          env=dict(os.environ, PATH=str(tmp_path)))
    assert done.returncode == 1 and "qemu-system-x86_64 not found on PATH" in done.stderr


@needs_static_busybox
def test_static_elf_check():
    assert initramfs.is_static_elf("/bin/busybox")
    assert not initramfs.is_static_elf("/bin/ls")
    assert not initramfs.is_static_elf(REPORT_SCHEMA)


@needs_static_busybox
@needs_cpio
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


def test_run_command_passes_filter_timeout_and_duration():
    command = initramfs.run_command("full", "qemu-tcg", "cancel/x[none]", 30, 12.5)
    assert "--profile full" in command and "'cancel/x[none]'" in command
    assert "--timeout 30" in command and "--duration 12.5" in command


def test_stream_reader_is_the_tools_reader(make_run, header_line):
    """Noise and torn lines skipped, the later result for an id wins, and a result the report
    schema refuses is dropped (as `uring_conform assemble` drops it)."""
    refused = json.dumps({"type": "result", "id": "f/c", "verdict": "pass"})
    run = make_run([header_line, "garbage", result_line("f/a", "fail"), result_line("f/a"), refused,
                    '{"type":"result","id":"f/b'])
    assert run.reader.release == json.loads(header_line)["kernel"]["release"]
    assert list(run.reader.results) == ["f/a"] and run.reader.results["f/a"]["verdict"] == "pass"
    assert [warning.split(": ")[1] for warning in run.reader.contents.warnings] == ["result line dropped"]


def test_stream_reader_rereads_only_when_the_file_grew(tmp_path, header_line):
    stream = tmp_path / "s.jsonl"
    stream.write_text(header_line + "\n")
    reader = guest.StreamReader(stream)
    reader.poll()
    assert reader.header is not None
    with open(stream, "a") as out:
        out.write(result_line("f/a") + "\n")
    reader.poll()  # within REREAD_S of the last read: not yet
    assert not reader.results
    reader.poll(final=True)
    assert list(reader.results) == ["f/a"]


@pytest.mark.parametrize("stream_end,console,timed_out,qemu_said,ended,detail_has", [
    pytest.param(True, "x\n[    9.1] Kernel panic - not syncing: late\n", False, "", "complete", "",
                 id="end-line-wins"),
    pytest.param(False, "[    2.864726] Kernel panic - not syncing: sysrq triggered crash\n", False, "",
                 "guest-panic", "Kernel panic - not syncing: sysrq triggered crash (console log logs/", id="panic"),
    pytest.param(False, "[1/3] pass\n", True, "", "guest-timeout", "killed after 60s", id="timeout"),
    pytest.param(False, "uring-conform-guest: harness exit status 139\n", False, "qemu: oops", "guest-error",
                 "harness exited without an end line", id="harness-died"),
])
def test_classify(make_run, header_line, stream_end, console, timed_out, qemu_said, ended, detail_has):
    run = make_run([header_line] + (['{"type":"end","duration_s":1}'] if stream_end else []), console)
    guest.classify(run, timed_out, qemu_said, 60)
    assert run.ended == ended and detail_has in run.detail


def test_kernel_trouble_counts_kernel_reports_only(make_run):
    console = ("[1/2] fail  WARNING: harness text, not the kernel\n"
               "[   3.4] ------------[ cut here ]------------\n"
               "[   3.5] WARNING: CPU: 1 PID: 80 at io_uring/io_uring.c:123 io_foo+0x1/0x2\n"
               "[   3.6] Call Trace:\n"
               "[   3.7] traps: prog[123] general protection fault ip:1 sp:2 error:0\n"
               "[   3.8] INFO: task iou-wrk-80:81 blocked for more than 120 seconds.\n"
               "uring-conform-guest: kernel tainted 512\n")
    found = guest.kernel_trouble(make_run(console_text=console))
    assert found[0].startswith("2 kernel splat lines") and "io_uring.c:123" in found[0]
    assert "tainted 512" in found[1]


def test_splat_patterns_come_from_the_shared_list():
    entries = json.loads(SPLATS_FILE.read_text())
    assert all(set(entry) <= {"kind", "prefix", "contains"} and isinstance(entry["prefix"], str) for entry in entries)
    assert guest.SPLAT_PATTERNS == guest.load_splat_patterns(SPLATS_FILE) and len(guest.SPLAT_PATTERNS) == len(entries)


@pytest.mark.parametrize("text,kind", [
    pytest.param("WARNING: CPU: 0 PID: 1 at kernel/foo.c:1 foo+0x0/0x1", "warn", id="warn"),
    pytest.param("WARNING: possible circular locking dependency detected", "lockdep", id="lockdep-warning"),
    pytest.param("WARNING: suspicious RCU usage", "lockdep", id="rcu-usage"),
    pytest.param("BUG: KASAN: slab-use-after-free in io_req_task_work_add", "kasan", id="kasan"),
    pytest.param("BUG: kernel NULL pointer dereference, address: 0000000000000008", "bug", id="bug"),
    pytest.param("Oops: general protection fault, probably for non-canonical address", "gpf", id="gpf-oops"),
    pytest.param("Oops: 0000 [#1] PREEMPT SMP", "oops", id="oops"),
    pytest.param("Internal error: Oops: 96000005 [#1] SMP", "oops", id="arm-oops"),
    pytest.param("INFO: task kworker/0:1:10 blocked for more than 120 seconds.", "hung-task", id="hung-task"),
    pytest.param("INFO: task kworker/0:1:10 is running", None, id="task-info-not-hung"),
    pytest.param("rcu: INFO: rcu_preempt detected stalls on CPUs/tasks:", "rcu-stall", id="rcu-stall"),
    pytest.param("traps: prog[123] general protection fault ip:1", None, id="user-gpf"),
    pytest.param("io_uring: something ordinary", None, id="ordinary"),
])
def test_splat_kind(text, kind):
    assert guest.splat_kind(text) == kind


@pytest.mark.parametrize("lines,expected", [
    pytest.param([], None, id="no-start-lines"),
    pytest.param([start_line("a/s[1]", 0)], "a/s[1]", id="first"),
    pytest.param([start_line("a/s[1]", 0), result_line("a/s[1]"), start_line("b/s[1]", 1)], "b/s[1]",
                 id="last-start-without-result"),
    pytest.param([start_line("a/s[1]", 0), result_line("a/s[1]")], None, id="between-scenarios"),
    pytest.param([result_line("a/s[1]"), start_line("a/s[1]", 0)], "a/s[1]", id="resumed-result-then-rerun"),
])
def test_running_at_panic_is_the_last_start_no_result_followed(make_run, header_line, lines, expected):
    run = make_run([header_line, *lines])
    assert (run.reader.unfinished or {}).get("id") == expected


def test_describe_looks_the_id_up_in_the_listing(monkeypatch):
    listing = [{"id": "a/s[n=1]", "family": "a", "scenario": "s", "params": {"n": 1}}]
    monkeypatch.setattr(resume, "run_quiet", lambda command, what: json.dumps(listing))
    assert resume.describe("uring-conform", "a/s[n=1]")["params"] == {"n": 1}


def test_crash_result_fits_the_report_schema(make_run):
    run = make_run(console_text="[ 1.0] BUG: kernel NULL pointer dereference\n"
                                "[ 1.1] Kernel panic - not syncing: Fatal exception\n[ 1.2] after\n")
    run.panic_line = "Kernel panic - not syncing: Fatal exception"
    crash = resume.crash_result({"id": "a/s[1]", "family": "a", "scenario": "s", "params": {"n": 1}}, run)
    schema = json.loads(REPORT_SCHEMA.read_text())
    jsonschema.validate(crash, {"$defs": schema["$defs"], "$ref": "#/$defs/result"})
    assert crash["verdict"] == "crash" and crash["evidence"]["output_tail"].endswith("Fatal exception")


def test_resume_file_is_header_then_results():
    text = resume.jsonl({"kernel": {"release": "r"}, "run": {}}, [{"id": "a/s", "verdict": "pass"}]).decode()
    lines = [json.loads(line) for line in text.splitlines()]
    assert [line["type"] for line in lines] == ["header", "result"] and lines[1]["id"] == "a/s"


def test_resume_after_panic_marks_the_unfinished_scenario_and_boots_the_rest(make_run, header_line, tmp_path,
                                                                             monkeypatch):
    """The crash goes to the id of the start line no result followed; the next boot carries it."""
    panicked = make_run([header_line, start_line("a/s[1]", 0), result_line("a/s[1]"), start_line("b/s[1]", 1)],
                        console_text="[ 1.1] Kernel panic - not syncing: Fatal exception\n", ended="guest-panic")
    panicked.panic_line = "Kernel panic - not syncing: Fatal exception"
    listing = [{"id": "b/s[1]", "family": "b", "scenario": "s", "params": {}}]
    carried, booted = {}, []
    monkeypatch.setattr(resume, "supported", lambda binary: True)
    monkeypatch.setattr(resume, "run_quiet", lambda command, what: json.dumps(listing))
    monkeypatch.setattr(initramfs, "build", lambda path, binary, command, extra, after="": carried.update(extra))
    monkeypatch.setattr(guest, "run_guest", lambda *args: booted.append(args[-1]) or "next run")
    plan = cli.Plan(cli.parse_args([]), "uring-conform", "tcg", tmp_path / "initrd", tmp_path)
    results = dict(panicked.reader.results)
    assert cli.resume_after_panic(plan, "vmlinuz", "6.1.0-56-amd64", [panicked], panicked.reader.header,
                                  results) == "next run"
    assert results["b/s[1]"]["verdict"] == "crash" and results["a/s[1]"]["verdict"] == "pass"
    lines = [json.loads(text) for text in carried[initramfs.RESUME_FILE.lstrip("/")].decode().splitlines()]
    assert [line.get("id") for line in lines] == [None, "a/s[1]", "b/s[1]"] and booted == ["6.1.0-56-amd64.resume1"]


def test_no_resume_when_the_panic_came_between_scenarios(make_run, header_line, tmp_path, monkeypatch, capsys):
    panicked = make_run([header_line, start_line("a/s[1]", 0), result_line("a/s[1]")], ended="guest-panic")
    monkeypatch.setattr(resume, "supported", lambda binary: True)
    plan = cli.Plan(cli.parse_args([]), "uring-conform", "tcg", tmp_path / "initrd", tmp_path)
    assert cli.resume_after_panic(plan, "vmlinuz", "r", [panicked], panicked.reader.header, {}) is None
    assert "the last one started, a/s[1], had finished" in capsys.readouterr().out


def fake_boots(monkeypatch, endings):
    """guest.run_guest answering with one canned run per boot: (ended, header or None)."""
    boots = []

    def run_guest(*args):
        ended, header = endings[len(boots)]
        boots.append(ended)
        reader = SimpleNamespace(header=header, results={}, end=None)
        return SimpleNamespace(ended=ended, reader=reader, panic_line="Oops: int3" if ended == "guest-panic" else None)

    monkeypatch.setattr(cli.guest, "run_guest", run_guest)
    monkeypatch.setattr(cli, "say_how_it_ended", lambda run: None)
    return boots


def plan_with(max_resumes):
    return SimpleNamespace(initrd=None, logs_dir=None, accel="tcg",
                           args=SimpleNamespace(boot_timeout=900, max_resumes=max_resumes))


def test_a_panic_before_the_harness_started_boots_again(monkeypatch):
    boots = fake_boots(monkeypatch, [("guest-panic", None), ("complete", {"kernel": {}})])
    runs, header, _ = cli.boot_kernel(plan_with(3), SimpleNamespace(release="6.12.117+deb12-amd64"), None)
    assert boots == ["guest-panic", "complete"]
    assert [run.ended for run in runs] == ["complete"] and header == {"kernel": {}}


def test_early_panics_stop_at_max_resumes(monkeypatch):
    boots = fake_boots(monkeypatch, [("guest-panic", None)] * 3)
    runs, header, _ = cli.boot_kernel(plan_with(1), SimpleNamespace(release="6.12.117+deb12-amd64"), None)
    assert boots == ["guest-panic", "guest-panic"]
    assert header is None and runs[-1].ended == "guest-panic"
