"""ci/matrix --explore: the guest's explore script, the files it sends on ttyS2 and the host
side that turns them into <release>.explore.json and reproducers (no guest is booted)."""

import base64
import gzip
import json
import subprocess

import pytest

from conftest import needs_cpio, needs_static_busybox
from kernel_matrix import cli, explore, guest, initramfs
from kernel_matrix.common import UsageError

RELEASE = "6.1.0-56-amd64"


def explore_report(findings=(), complete=True, release=RELEASE):
    """The fields of an explore report (reports/explore.schema.json) the host side reads."""
    return {"schema": "uring-conform/explore/1", "complete": complete, "kernel": {"release": release},
            "options": {"seed": 1},
            "metrics": {"elapsed_s": 30.2, "rounds": 604, "rounds_per_s": 20.0, "requests_per_s": 310.0,
                        "percent_of_nop_roundtrip": 1.5},
            "findings": list(findings)}


def block(name, data, size=None, end=True):
    encoded = base64.encodebytes(data).decode()
    text = f"{explore.FILE_MARK} {name} {len(data) if size is None else size}\n{encoded}"
    return text + (explore.FILE_END + "\n" if end else "")


@pytest.mark.parametrize("argv", [
    pytest.param(["--explore", "0"], id="explore-zero"),
    pytest.param(["--explore", "soon"], id="explore-not-a-number"),
    pytest.param(["--explore", "30", "--explore-seed", "-1"], id="seed-negative"),
    pytest.param(["--explore", "30", "--explore-seed", str(2 ** 64)], id="seed-too-big"),
    pytest.param(["--explore-seed", "7"], id="seed-without-explore"),
])
def test_bad_explore_arguments_are_usage_errors(argv):
    with pytest.raises(UsageError):
        cli.parse_args(argv)


def test_explore_runs_after_the_suite_with_a_fixed_seed():
    args = cli.parse_args(["--explore", "45"])
    plan = cli.Plan(args, "uring-conform", "tcg", None, None)
    assert args.explore_seed == explore.DEFAULT_SEED
    assert "explore --duration 45 --seed 1 --report /tmp/explore.json --emit-reproducer /tmp/found" in plan.after_run
    assert cli.Plan(cli.parse_args([]), "uring-conform", "tcg", None, None).after_run == ""


def test_qemu_gives_the_files_port_only_when_asked():
    plain = guest.qemu_command("vmlinuz", "initrd", "c.log", "s.jsonl", "tcg")
    with_files = guest.qemu_command("vmlinuz", "initrd", "c.log", "s.jsonl", "tcg", files="f.txt")
    assert plain.count("-serial") == 2 and with_files.count("-serial") == 3
    assert with_files[with_files.index("file:s.jsonl") + 2] == "file:f.txt"


@needs_static_busybox
@needs_cpio
def test_init_explores_after_the_harness_and_before_poweroff(tmp_path):
    archive = tmp_path / "initrd.cpio.gz"
    initramfs.build(archive, "/bin/busybox", initramfs.run_command("quick", "qemu-tcg"),
                    after=explore.guest_script(30, 9))
    init = subprocess.run(["cpio", "-i", "--to-stdout", "init"], input=gzip.decompress(archive.read_bytes()),
                          capture_output=True, check=True).stdout.decode()
    order = [init.index(text) for text in ("uring-conform run", "harness exit status",
                                           "uring-conform explore --duration 30 --seed 9",
                                           "explore exit status", "> /dev/ttyS2", "poweroff -f")]
    assert order == sorted(order)
    subprocess.run(["/bin/busybox", "sh", "-n"], input=init.encode(), check=True)


@needs_static_busybox
def test_guest_script_sends_report_and_reproducers_that_read_files_restores(tmp_path):
    """The real shell loop under busybox sh and busybox base64, the paths moved into tmp_path
    and the harness replaced by a script writing what explore writes."""
    report = json.dumps(explore_report([{"rule": "r", "round": 3, "occurrences": 1,
                                         "reproducer": "/tmp/found/found-r-1-r3.c"}]))
    fake = tmp_path / "uring-conform"
    fake.write_text(f"#!/bin/sh\nprintf '%s' '{report}' > {tmp_path}/explore.json\n"
                    f"printf 'int main(void) {{ return 1; }}\\n' > {tmp_path}/found/found-r-1-r3.c\nexit 1\n")
    fake.chmod(0o755)
    port = tmp_path / "ttyS2"
    script = (explore.guest_script(30, 1).replace("/bin/uring-conform", str(fake))
              .replace(explore.REPORT, str(tmp_path / "explore.json"))
              .replace(explore.REPRODUCERS, str(tmp_path / "found")).replace(explore.FILES_PORT, str(port)))
    script = script.replace("stty", "true")  # the port is a file here
    shell = subprocess.run(["/bin/busybox", "sh", "-c", script], capture_output=True, text=True,
                           env={"PATH": "/bin:/usr/bin"})
    assert "explore exit status 1" in shell.stdout
    files = explore.read_files(port)
    assert files.warnings == []
    assert json.loads(files.files["explore.json"]) == json.loads(report)
    assert files.files["found-r-1-r3.c"] == b"int main(void) { return 1; }\n"


def test_read_files_keeps_intact_blocks_and_names_the_rest(tmp_path):
    port = tmp_path / "ttyS2"
    port.write_text("noise\r\n" + block("a.c", b"a" * 100).replace("\n", "\r\n") + block("b.c", b"bb", size=5)
                    + block("../evil", b"x") + block("c.c", b"c" * 300, end=False))
    files = explore.read_files(port)
    assert files.files == {"a.c": b"a" * 100}
    assert [warning.split(":")[0] for warning in files.warnings] == ["b.c", "'../evil'", "1 file block(s) torn (no end line"]


def test_missing_files_port_reads_as_nothing(tmp_path):
    assert explore.read_files(tmp_path / "absent").files == {}


def test_explore_report_and_reproducers_land_in_the_out_dir(make_run, tmp_path, capsys):
    report = explore_report([{"rule": "outstanding-after-drain", "round": 533, "occurrences": 2,
                              "reproducer": "/tmp/found/found-x-1-r533.c"}])
    run = make_run(console_text="uring-conform-guest: explore exit status 1\n", ended="complete")
    run.files = tmp_path / "files.txt"
    run.files.write_text(block("explore.json", json.dumps(report).encode()) + block("found-x-1-r533.c", b"/* x */\n"))
    out_dir = tmp_path / "out"
    plan = cli.Plan(cli.parse_args(["--explore", "30", "--out-dir", str(out_dir)]), "uring-conform", "tcg", None, tmp_path)
    path = cli.write_explore_report(plan, RELEASE, [run])
    assert path == out_dir / f"{RELEASE}.explore.json"
    saved = json.loads(path.read_text())
    reproducer = out_dir / f"{RELEASE}.explore" / "found-x-1-r533.c"
    assert saved["findings"][0]["reproducer"] == str(reproducer) and reproducer.read_bytes() == b"/* x */\n"
    said = capsys.readouterr().out
    assert "604 rounds in 30s (20.0/s, 310 requests/s, 1.5 % of the NOP round trip), seed 1" in said
    assert "broke: outstanding-after-drain (round 533, 2x, reproducer" in said


@pytest.mark.parametrize("console,ended,why", [
    pytest.param("uring-conform-guest: explore exit status 2\n", "complete", "explore exited with status 2",
                 id="explore-refused"),
    pytest.param("[ 9.0] Kernel panic - not syncing: x\n", "guest-panic", "the guest ended guest-panic before",
                 id="panic-while-exploring"),
])
def test_no_explore_report_is_said_and_counts_as_incomplete(make_run, tmp_path, capsys, console, ended, why):
    run = make_run(console_text=console, ended=ended)
    plan = cli.Plan(cli.parse_args(["--explore", "30", "--out-dir", str(tmp_path)]), "uring-conform", "tcg", None, tmp_path)
    assert cli.write_explore_report(plan, RELEASE, [run]) is None
    assert f"no explore report: {why}" in capsys.readouterr().out
