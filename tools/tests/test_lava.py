"""lava: emitted jobs pass lava_common's validator; the guest runner script turns KTAP into
lava-test-case calls and dumps the report; lava-report takes the report back out of a log."""

import base64
import gzip
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from conftest import assert_one_line_error, report_document, run_cli
from uring_conform.lava import (BOARD_JOB_NAME, QEMU_JOB_NAME, REPORT_BEGIN, REPORT_END,
                                RUNNER_SCRIPT, build_initramfs, case_name, validate_job)

lava_schemas = pytest.importorskip(
    "lava_common.schemas", reason="lava_common missing (apt-get install lava-common; run with "
                                  "/usr/bin/python3)")
BUSYBOX = shutil.which("busybox") or "/bin/busybox"
needs_busybox = pytest.mark.skipif(not os.path.exists(BUSYBOX),
                                   reason="busybox missing (apt-get install busybox-static)")
HARNESS = Path(os.environ.get("URING_CONFORM_BINARY")  # meson test sets it to its build's binary
               or Path(__file__).resolve().parents[2] / "build" / "uring-conform")
KERNEL, MODULES = "https://lab.example/k/vmlinuz-6.12.9", "https://lab.example/k/modules.tar.xz"
INITRAMFS = "https://lab.example/i/uring-conform-lava.cpio.gz"


def write_jobs(tmp_path, *extra):
    out = tmp_path / "jobs"
    run = run_cli("lava", "--kernel", KERNEL, "--initramfs", INITRAMFS, "--out", out, *extra)
    assert run.status == 0, run.stderr
    return {name: yaml.safe_load((out / name).read_text()) for name in (QEMU_JOB_NAME,
                                                                          BOARD_JOB_NAME)}


@pytest.mark.parametrize("extra", [
    pytest.param((), id="kernel-only"),
    pytest.param(("--modules", MODULES), id="with-modules"),
    pytest.param(("--profile", "full", "--filter", "cancel/* x", "--timeout", "20"),
                 id="full-filtered"),
])
def test_every_job_passes_lava_common_validation(tmp_path, extra):
    for job in write_jobs(tmp_path, *extra).values():
        # The validator straight from lava_common, not our wrapper around it.
        lava_schemas.validate(job, strict=True, extra_context_variables=[])


def test_qemu_job_boots_kernel_with_initramfs_that_takes_lava_overlay_and_modules(tmp_path):
    job = write_jobs(tmp_path, "--modules", MODULES)[QEMU_JOB_NAME]
    deploy, boot, test = (next(iter(action.values())) for action in job["actions"])
    assert (job["device_type"], deploy["to"], boot["method"]) == ("qemu", "tmpfs", "qemu")
    assert deploy["images"]["kernel"]["url"] == KERNEL
    ramdisk = deploy["images"]["ramdisk"]
    assert (ramdisk["url"], ramdisk["format"], ramdisk["compression"]) == (INITRAMFS, "cpio.newc",
                                                                           "gz")
    assert ramdisk["overlays"]["lava"] is True
    assert ramdisk["overlays"]["modules"] == {"url": MODULES, "compression": "xz",
                                              "format": "tar", "path": "/"}
    steps = test["definitions"][0]["repository"]["run"]["steps"]
    assert steps == ["sh /bin/uring-conform-lava --profile quick --environment lava-qemu"]


def test_board_template_has_placeholders_and_u_boot_ramdisk(tmp_path):
    job = write_jobs(tmp_path, "--modules", MODULES)[BOARD_JOB_NAME]
    deploy, boot, _ = (next(iter(action.values())) for action in job["actions"])
    assert job["device_type"] == "DEVICE_TYPE" and deploy["dtb"]["url"] == "DTB_URL"
    assert (deploy["to"], boot["method"], boot["commands"]) == ("tftp", "u-boot", "ramdisk")
    assert deploy["ramdisk"]["install_overlay"] and deploy["ramdisk"]["install_modules"]
    assert deploy["modules"]["url"] == MODULES


def test_filter_with_shell_characters_is_quoted(tmp_path):
    job = write_jobs(tmp_path, "--filter", "cancel/* it's")[QEMU_JOB_NAME]
    step = job["actions"][2]["test"]["definitions"][0]["repository"]["run"]["steps"][0]
    assert step.endswith("--filter 'cancel/* it'\\''s'")


def test_validator_rejects_a_broken_job(tmp_path):
    job = write_jobs(tmp_path)[QEMU_JOB_NAME]
    del job["visibility"]
    with pytest.raises(Exception, match="not a valid LAVA job at visibility"):
        validate_job(job)


@pytest.mark.parametrize("argv,source", [
    pytest.param(("--kernel", "vmlinuz"), "--kernel", id="kernel-not-a-url"),
    pytest.param(("--kernel", KERNEL, "--modules", "m.tar.xz"), "--modules",
                 id="modules-not-a-url"),
    pytest.param(("--kernel", KERNEL, "--test-minutes", "50"), "--job-minutes",
                 id="test-longer-than-job"),
])
def test_bad_arguments_are_one_line_errors(tmp_path, argv, source):
    run = run_cli("lava", *argv, "--initramfs", INITRAMFS, "--out", tmp_path / "jobs")
    assert_one_line_error(run, source)


def test_a_directory_where_a_job_goes_is_not_replaced(tmp_path):
    (tmp_path / "jobs" / QEMU_JOB_NAME).mkdir(parents=True)
    run = run_cli("lava", "--kernel", KERNEL, "--initramfs", INITRAMFS, "--out", tmp_path / "jobs")
    assert_one_line_error(run, tmp_path / "jobs" / QEMU_JOB_NAME)


@needs_busybox
def test_initramfs_holds_runner_harness_and_a_console_shell(tmp_path):
    image = tmp_path / "initramfs.cpio.gz"
    # busybox is a static ELF too, so it can stand in for the static harness here.
    build_initramfs(image, Path(os.path.realpath(BUSYBOX)))
    listing = subprocess.run([BUSYBOX, "cpio", "-t"], input=gzip.decompress(image.read_bytes()),
                             capture_output=True, check=True).stdout.decode().split()
    assert {"init", "bin/uring-conform", "bin/uring-conform-lava", "bin/awk",
            "bin/cttyhack"} <= set(listing)
    extract = tmp_path / "root"
    extract.mkdir()
    subprocess.run([BUSYBOX, "cpio", "-id", "init", "bin/uring-conform-lava"], cwd=extract,
                   input=gzip.decompress(image.read_bytes()), check=True)
    assert "setsid cttyhack /bin/sh" in (extract / "init").read_text()
    assert (extract / "bin" / "uring-conform-lava").read_text() == RUNNER_SCRIPT


FAKE_KTAP = """KTAP version 1
1..2
  KTAP version 1
  # Subtest: cancel
  1..4
  ok 1 cancel/fd-all[none]
  # fail: broken rule
  not ok 2 cancel/fd-all[sqpoll]
  not ok 3 cancel/running[cq=8] # TIMEOUT watchdog after 30 s
  not ok 4 cancel/running[cq=256] # ERROR socketpair: EMFILE
not ok 1 cancel
  KTAP version 1
  # Subtest: bufring
  1..1
  ok 1 bufring/inc[defer_taskrun,len=64] # SKIP probe: no IOU_PBUF_RING_INC
ok 2 bufring
"""


def guest_bin(tmp_path, harness):
    """A PATH like the guest's: busybox applets, fake lava-test-* that record their arguments,
    a dmesg that does not touch the host's console level, and the harness."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for applet in ("sh", "awk", "cut", "gzip", "base64", "wc", "rm", "cat", "mkdir", "echo"):
        (bin_dir / applet).symlink_to(BUSYBOX)
    calls = tmp_path / "calls"
    for fake in ("lava-test-case", "lava-test-set", "dmesg"):
        (bin_dir / fake).write_text(f'#!{BUSYBOX} sh\necho "{fake} $*" >> {calls}\n')
        (bin_dir / fake).chmod(0o755)
    (bin_dir / "uring-conform").symlink_to(harness)
    return bin_dir, calls


def run_runner(tmp_path, harness, *options):
    bin_dir, calls = guest_bin(tmp_path, harness)
    script = tmp_path / "uring-conform-lava"
    # busybox sh runs its own applets before searching PATH, so the fake dmesg is named by
    # path: the real one would change this machine's console log level.
    assert RUNNER_SCRIPT.count("dmesg -n") == 2
    script.write_text(RUNNER_SCRIPT.replace("dmesg -n", f"{bin_dir / 'dmesg'} -n"))
    done = subprocess.run([BUSYBOX, "sh", str(script), *options], env={"PATH": str(bin_dir)},
                          capture_output=True, text=True, timeout=120, cwd=tmp_path)
    return done, calls.read_text().splitlines()


@needs_busybox
def test_runner_maps_ktap_verdicts_to_lava_results_per_family(tmp_path):
    report = json.dumps(report_document("6.12.9", {"cancel/fd-all[none]": "pass"}))
    fake = tmp_path / "fake-harness"
    # The fake harness writes the KTAP and report the real one would (--report R --ktap K).
    # argv: run --report R --ktap K ...
    fake.write_text(f"#!{BUSYBOX} sh\ncat > \"$5\" <<'EOF'\n{FAKE_KTAP}EOF\n"
                    f"cat > \"$3\" <<'EOF'\n{report}\nEOF\nexit 1\n")
    fake.chmod(0o755)
    done, calls = run_runner(tmp_path, fake, "--profile", "quick")
    assert done.returncode == 0, done.stderr
    assert calls[:10] == [
        "lava-test-set start cancel",
        "lava-test-case fd-all.none --result pass",
        "lava-test-case fd-all.sqpoll --result fail",
        "lava-test-case running.cq-8 --result fail",      # hang
        "lava-test-case running.cq-256 --result unknown",  # error: not the kernel's verdict
        "lava-test-set stop",
        "lava-test-set start bufring",
        "lava-test-case inc.defer_taskrun.len-64 --result skip",
        "lava-test-set stop",
        # exit 1 = kernel findings, the run itself completed
        "lava-test-case uring-conform-run --result pass --measurement 1 --units exit-status",
    ]
    assert calls[10:] == ["dmesg -n 1", "dmesg -n " + calls[11].split()[-1],
                          "lava-test-case uring-conform-report --result pass"]
    from uring_conform.lava import extract_report
    assert json.loads(extract_report(done.stdout, "stdout")) == json.loads(report)


@needs_busybox
def test_runner_reports_a_harness_that_died_as_failed_run(tmp_path):
    fake = tmp_path / "fake-harness"
    fake.write_text(f"#!{BUSYBOX} sh\nexit 3\n")
    fake.chmod(0o755)
    done, calls = run_runner(tmp_path, fake)
    assert done.returncode == 0, done.stderr
    assert calls == ["lava-test-case uring-conform-run --result fail --measurement 3 "
                     "--units exit-status", "lava-test-case uring-conform-report --result fail"]


@needs_busybox
@pytest.mark.skipif(not HARNESS.exists(), reason=f"{HARNESS} not built (./conform build)")
def test_runner_on_the_real_harness_names_every_result_as_case_name_does(tmp_path):
    done, calls = run_runner(tmp_path, HARNESS, "--profile", "quick",
                             "--filter", "multishot/recv-peer-close*", "--environment", "test")
    assert "uring-conform exit status" in done.stdout, done.stderr
    from uring_conform.lava import extract_report
    report = json.loads(extract_report(done.stdout, "stdout"))
    lava_result = {"pass": "pass", "fail": "fail", "hang": "fail", "crash": "fail",
                   "skip": "skip", "error": "unknown"}
    expected = []
    for result in report["results"]:
        family, name = case_name(result["id"])
        expected.append(f"lava-test-case {name} --result {lava_result[result['verdict']]}")
    assert expected and [call for call in calls if call.startswith("lava-test-case ")
                         and "uring-conform-" not in call] == expected
    assert calls[0] == "lava-test-set start multishot"


def test_case_names_are_lava_safe_and_distinct():
    ids = ["multishot/recv-peer-close[defer_taskrun,cq=8]", "cancel/fd-all[none]",
           "timeout/abs[timens,clock=boottime]", "bufring/x y"]
    names = [case_name(result_id) for result_id in ids]
    assert names[0] == ("multishot", "recv-peer-close.defer_taskrun.cq-8")
    assert names[3] == ("bufring", "x_y")
    assert all(lava_schemas.Match(r"^[-_a-zA-Z0-9.]+$")(part) for name in names for part in name)


def dump(document):
    encoded = base64.encodebytes(gzip.compress(json.dumps(document).encode())).decode()
    return [f"{REPORT_BEGIN} 123 bytes, gzip | base64", *encoded.splitlines(), REPORT_END]


def raw_log(lines):
    """What `lavacli jobs logs --raw` gives: YAML entries, target output at lvl target."""
    entries = [{"dt": "2025-02-01T12:00:00", "lvl": "info", "msg": "start: 1 tftp-deploy"}]
    entries += [{"dt": "2025-02-01T12:00:01", "lvl": "target", "msg": line} for line in lines]
    return yaml.safe_dump(entries)


@pytest.mark.parametrize("form", ["raw-yaml", "console-text"])
def test_lava_report_takes_the_report_out_of_a_job_log(tmp_path, form):
    document = report_document("6.12.9", {"cancel/fd-all[none]": "fail"})
    lines = ["[   3.1] random kernel line", *dump(document), "uring-conform# "]
    log = tmp_path / "log"
    log.write_text(raw_log(lines) if form == "raw-yaml" else "\n".join(lines))
    run = run_cli("lava-report", log, "-o", tmp_path / "r.json")
    assert run.status == 0, run.stderr
    assert json.loads((tmp_path / "r.json").read_text()) == document
    assert "kernel 6.12.9, 1 results" in run.stdout


def test_lava_report_names_a_damaged_or_missing_dump(tmp_path):
    lines = dump(report_document("6.12.9"))
    lines[2] = lines[2][:-8] + "AAAAAAAA"
    log = tmp_path / "log"
    log.write_text("\n".join(lines))
    assert_one_line_error(run_cli("lava-report", log, "-o", tmp_path / "r.json"), log)
    log.write_text("no dump here\n")
    assert_one_line_error(run_cli("lava-report", log, "-o", tmp_path / "r.json"), log)
    assert not (tmp_path / "r.json").exists()


def test_lava_report_rejects_a_dump_that_is_not_a_valid_report(tmp_path):
    log = tmp_path / "log"
    log.write_text("\n".join(dump({"schema_version": 1})))
    assert_one_line_error(run_cli("lava-report", log, "-o", tmp_path / "r.json"), log)
