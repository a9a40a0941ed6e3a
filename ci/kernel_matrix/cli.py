"""ci/matrix's command line, and the run over all selected kernels."""

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from kernel_matrix import explore, guest, image, initramfs, kernels, resume
from kernel_matrix.common import CACHE, REPO, MatrixError, UsageError, log, run_command, run_quiet

DEFAULT_BINARY = REPO / "build-static" / "uring-conform"
PROFILES = ("quick", "full", "stress")
ASSEMBLE_WARNINGS_SHOWN = 3
DESCRIPTION = "Boot Debian kernels under qemu and run uring-conform inside each; one report per kernel."
EPILOG = (f"KERNEL: {kernels.FORMS}; a series alone is its newest package. "
          "Default: 6.1 and 6.12 (unless --kernel-image is given). Kernels are cached in $URING_CONFORM_CACHE/kernels "
          f"(now {CACHE}/kernels). Exit: 0 every guest completed, 1 one did not or the host failed, "
          "2 bad usage. See ci/README.md.")


@dataclass
class Plan:
    """Everything every kernel's boot shares."""
    args: argparse.Namespace
    binary: Path
    accel: str
    initrd: Path
    scratch: Path

    @property
    def logs_dir(self):
        return self.args.out_dir / "logs"

    @property
    def after_run(self):
        """Shell the guest runs once the suite has ended: the exploration, when asked for."""
        return explore.guest_script(self.args.explore, self.args.explore_seed) if self.args.explore else ""


def positive_seconds(text):
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not 0 < value <= 7 * 24 * 3600:
        raise argparse.ArgumentTypeError(f"{text!r} must be more than 0 and at most a week")
    return value


def count(text):
    if not text.isdigit() or int(text) > 100:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number from 0 to 100")
    return int(text)


def seed(text):
    if not text.isdigit() or int(text) >= 2 ** 64:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number from 0 to 2^64-1")
    return int(text)


class Parser(argparse.ArgumentParser):
    def error(self, message):
        raise UsageError(message)


def parse_args(argv):
    parser = Parser(prog="ci/matrix", description=DESCRIPTION, epilog=EPILOG)
    parser.add_argument("kernels", nargs="*", metavar="KERNEL")
    parser.add_argument("--rt", action="store_true", help="add the PREEMPT_RT builds to the default set")
    parser.add_argument("--kernel-image", type=Path, action="append", default=[], metavar="PATH",
                        help="also boot a locally built bzImage/vmlinuz (repeatable); the report is named "
                             "after the release in its version string")
    parser.add_argument("--kernel-config", type=Path, action="append", default=[], metavar="PATH",
                        help="the config of the --kernel-image of the same position (default: config-<release>, "
                             "config or .config beside the image, or the tree's .config for arch/x86/boot/bzImage)")
    parser.add_argument("--profile", default="quick", choices=PROFILES, help="uring-conform run --profile")
    parser.add_argument("--filter", help="scenario id glob (uring-conform run --filter)")
    parser.add_argument("--timeout", type=positive_seconds, help="per-scenario watchdog (uring-conform run --timeout)")
    parser.add_argument("--boot-timeout", type=positive_seconds, default=900, metavar="SECONDS",
                        help="wall-clock limit per boot; then qemu is killed (default 900)")
    parser.add_argument("--max-resumes", type=count, default=3, metavar="N",
                        help="boots after guest kernel panics that continue the run (default 3, 0: none)")
    parser.add_argument("--out-dir", type=Path, default=REPO / "reports", metavar="DIR",
                        help="reports land in DIR/<kernel-release>.json, guest logs in DIR/logs/ (default reports/)")
    parser.add_argument("--binary", type=Path, metavar="PATH",
                        help="static uring-conform for the guests (default: build-static/uring-conform, "
                             "compiled first with -Dstatic=true)")
    parser.add_argument("--explore", type=positive_seconds, metavar="SECONDS",
                        help="after the suite, run `uring-conform explore` for SECONDS in each guest; its report "
                             "lands in DIR/<kernel-release>.explore.json, emitted reproducers in "
                             "DIR/<kernel-release>.explore/")
    parser.add_argument("--explore-seed", type=seed, default=explore.DEFAULT_SEED, metavar="N",
                        help=f"uring-conform explore --seed, the same on every kernel (default {explore.DEFAULT_SEED})")
    parser.add_argument("--accel", choices=("auto", "kvm", "tcg"), default="auto",
                        help="auto: KVM when a probe boot works, else TCG (default)")
    args = parser.parse_args(argv)
    if args.rt and (args.kernels or args.kernel_image):
        raise UsageError("--rt extends the default set; name -rt kernels instead (e.g. 6.1-rt)")
    if args.explore_seed != explore.DEFAULT_SEED and args.explore is None:
        raise UsageError("--explore-seed needs --explore SECONDS")
    if len(args.kernel_config) > len(args.kernel_image):
        raise UsageError(f"--kernel-config given {len(args.kernel_config)} times for "
                         f"{len(args.kernel_image)} --kernel-image")
    for arg in args.kernels:
        kernels.check_form(arg)
    return args


def local_kernels(args):
    """The --kernel-image kernels, each checked (release readable, config complete) before the host."""
    configs = args.kernel_config + [None] * (len(args.kernel_image) - len(args.kernel_config))
    return [image.local_kernel(path, config) for path, config in zip(args.kernel_image, configs)]


def select_kernels(args, local):
    """Every kernel of this run, packages resolved with apt; two with one release would share a report."""
    wanted = args.kernels or ([] if local else kernels.default_set(args.rt))
    selected = kernels.select(wanted) + local
    releases = [kernel.release for kernel in selected]
    for release in dict.fromkeys(release for release in releases if releases.count(release) > 1):
        same = ", ".join(kernel.label for kernel in selected if kernel.release == release)
        raise UsageError(f"{same}: one release {release}, one report: set CONFIG_LOCALVERSION apart "
                         "or run them with different --out-dir")
    return selected


def check_host():
    for tool in ("qemu-system-x86_64", "apt-get", "apt-cache", "dpkg"):
        if shutil.which(tool) is None:
            raise MatrixError(f"{tool} not found on PATH (./conform matrix installs what it needs)")
    try:
        (CACHE / "kernels").mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise MatrixError(f"cache {CACHE}: {error.strerror} (set URING_CONFORM_CACHE)") from None


def harness_binary(path):
    """--binary as given, or build-static/ brought up to date (meson setup on first use, then an
    incremental compile, so the guests run the current source)."""
    if path is None:
        path, build = DEFAULT_BINARY, DEFAULT_BINARY.parent
        if not (build / "build.ninja").exists():
            log(f"configuring {build} (meson -Dstatic=true)")
            run_quiet(["meson", "setup", str(build), "-Dstatic=true"], "meson setup (static)", cwd=REPO)
        log(f"compiling the static harness in {build}")
        run_quiet(["meson", "compile", "-C", str(build), "-j", "2"], "meson compile (static)", cwd=REPO)
    if not path.is_file():
        raise UsageError(f"--binary {path}: no such file")
    if not initramfs.is_static_elf(path):
        raise UsageError(f"--binary {path}: not a statically linked x86-64 ELF (the guest has no libc)")
    return path


def say_how_it_ended(run):
    booted = "" if run.header_s is None else f" (harness started at {run.header_s:.1f}s)"
    status = "" if run.exit_status is None else f", harness exit status {run.exit_status}"
    detail = f": {run.detail}" if run.detail else ""
    log(f"{run.label}: guest ended {run.ended} after {run.elapsed_s:.1f}s{booted}"
        f" with {len(run.reader.results)} results{status}{detail}")
    log(f"{run.label}: console log {run.console}")
    for line in guest.kernel_trouble(run):
        log(f"{run.label}: {line}")


def resume_after_panic(plan, vmlinuz, release, runs, header, results):
    """Boot again after a panic, the crashed scenario marked; returns the new run or None."""
    if not resume.supported(plan.binary):
        log(f"{release}: this uring-conform has no run --resume; the report keeps what finished")
        return None
    reader = runs[-1].reader
    if reader.unfinished is None:
        why = (f"the last one started, {reader.started[-1]['id']}, had finished" if reader.started
               else "the stream has no start lines")
        log(f"{release}: cannot tell which scenario was running at the panic ({why}); not resuming")
        return None
    crashed = resume.describe(plan.binary, reader.unfinished["id"])
    results[crashed["id"]] = resume.crash_result(crashed, runs[-1])
    log(f"{release}: guest panicked in {crashed['id']}; recorded as crash, resuming the rest")
    initrd = plan.scratch / f"resume-{release}-{len(runs)}.cpio.gz"
    resume_file = resume.jsonl(header, results.values())
    initramfs.build(initrd, plan.binary, initramfs.resume_command(),
                    {initramfs.RESUME_FILE.lstrip("/"): resume_file}, after=plan.after_run)
    return guest.run_guest(vmlinuz, initrd, plan.logs_dir, plan.accel, plan.args.boot_timeout,
                           f"{release}.resume{len(runs)}")


def boot_kernel(plan, kernel, vmlinuz):
    """Boot until the run completes or cannot go on; returns (runs, header, results by id)."""
    release = kernel.release

    def boot():
        run = guest.run_guest(vmlinuz, plan.initrd, plan.logs_dir, plan.accel, plan.args.boot_timeout, release)
        say_how_it_ended(run)
        return run

    first, boots = boot(), 1
    # A panic before the harness wrote its header cost no scenario (an early-boot
    # Oops under TCG, seen once with 6.12.117): boot again, within --max-resumes.
    while first.ended == "guest-panic" and first.reader.header is None and boots <= plan.args.max_resumes:
        log(f"{release}: the guest panicked before the harness started ({first.panic_line}); booting again")
        first, boots = boot(), boots + 1
    runs = [first]
    header, results = first.reader.header, dict(first.reader.results)
    while runs[-1].ended == "guest-panic" and header is not None and len(runs) <= plan.args.max_resumes:
        run = resume_after_panic(plan, vmlinuz, release, runs, header, results)
        if run is None:
            break
        runs.append(run)
        say_how_it_ended(run)
        results.update(run.reader.results)
    return runs, header, results


def write_report(plan, release, runs, header, results):
    """Assemble the report from the stream (or, after resumes, from all boots merged); returns
    its path, or None when there is none or it lost results."""
    if header is None:
        log(f"{release}: no report: the harness never wrote its header line (stream {runs[0].stream})")
        return None
    last = runs[-1]
    stream, detail = last.stream, last.detail
    if len(runs) > 1:
        stream = plan.logs_dir / f"{release}.resumed.jsonl"
        stream.write_bytes(resume.jsonl({**header, "run": {**header["run"], "resumed": True}},
                                        results.values(), last.reader.end))
        panics = [f"guest panicked: {run.panic_line} ({run.console_name}), resumed" for run in runs[:-1]]
        detail = "; ".join(panics + ([detail] if detail else []))
    report = plan.args.out_dir / f"{header['kernel']['release']}.json"
    command = [sys.executable, "-m", "uring_conform", "assemble", str(stream), "-o", str(report),
               "--ended", last.ended, "--force"]
    if detail:
        command += ["--ended-detail", detail]
    done = subprocess.run(command, capture_output=True, text=True, env=dict(os.environ, PYTHONPATH=str(REPO / "tools")))
    said = done.stderr.strip().splitlines()
    if done.returncode != 0:
        log(f"{release}: no report: assemble failed (exit {done.returncode}): {(said or ['no output'])[-1]}")
        return None
    # Results the stream had but the schema refused are dropped by assemble: say so loudly.
    for line in said[:ASSEMBLE_WARNINGS_SHOWN]:
        log(f"{release}: assemble {line}")
    if len(said) > ASSEMBLE_WARNINGS_SHOWN:
        log(f"{release}: assemble: {len(said) - ASSEMBLE_WARNINGS_SHOWN} more warnings")
    log(f"{release}: report {done.stdout.strip() or report}")
    kept = len(json.loads(report.read_text())["results"])
    if kept < len(results):
        log(f"{release}: the report lost {len(results) - kept} of the {len(results)} results the guest streamed")
        return None
    return report


def write_explore_report(plan, release, runs):
    """The exploration's report and reproducers, from what the last boot sent on ttyS2; returns
    the report's path, or None when none arrived."""
    last = runs[-1]
    files = explore.read_files(last.files) if last.files else explore.GuestFiles()
    for warning in files.warnings:
        log(f"{release}: explore: {warning}")
    report, reproducers = explore.save(plan.args.out_dir, release, files)
    if report is None:
        status = explore.EXIT_MARK.search(last.console_text)
        why = (f"explore exited with status {status.group(1)}" if status
               else f"the guest ended {last.ended} before explore finished")
        log(f"{release}: no explore report: {why}; console log {last.console}")
        return None
    log(f"{release}: explore: {explore.summary(report)}")
    for path in reproducers:
        log(f"{release}: explore reproducer {path}")
    log(f"{release}: explore report {report}")
    return report


def main(argv):
    args = parse_args(argv)
    local = local_kernels(args)
    check_host()
    selected = select_kernels(args, local)
    log("kernels: " + ", ".join(kernel.label for kernel in selected))
    binary = harness_binary(args.binary)
    vmlinuz = {kernel: kernels.fetch(kernel) for kernel in selected}
    (args.out_dir / "logs").mkdir(parents=True, exist_ok=True)
    completed = {}
    with tempfile.TemporaryDirectory(prefix="uring-conform-matrix-") as scratch:
        scratch = Path(scratch)
        probe_initrd = scratch / "probe.cpio.gz"
        initramfs.build(probe_initrd, binary, "true")
        accel = guest.choose_accel(args.accel, vmlinuz[selected[0]], probe_initrd, scratch)
        log("building initramfs")
        initrd = scratch / "initramfs.cpio.gz"
        plan = Plan(args, binary, accel, initrd, scratch)
        initramfs.build(initrd, binary, initramfs.run_command(args.profile, f"qemu-{accel}", args.filter, args.timeout),
                        after=plan.after_run)
        for kernel in selected:
            runs, header, results = boot_kernel(plan, kernel, vmlinuz[kernel])
            report = write_report(plan, kernel.release, runs, header, results)
            completed[kernel.release] = report is not None and runs[-1].ended == "complete"
            if args.explore:
                completed[kernel.release] &= write_explore_report(plan, kernel.release, runs) is not None
    incomplete = [release for release, done in completed.items() if not done]
    if incomplete:
        log("incomplete: " + ", ".join(incomplete))
        return 1
    log("all guests completed")
    return 0


def run(argv):
    return run_command(main, argv, "ci/matrix")
