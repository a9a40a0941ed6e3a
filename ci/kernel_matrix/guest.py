"""One qemu boot of a kernel with the matrix initramfs, and how it ended.

The harness's JSONL lines reach the host on the guest's second serial port (ttyS1, written by
qemu to a file); the console (ttyS0) goes to its own log and is read only to tell how the guest
ended, never for results.
"""

import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from kernel_matrix.common import SPLATS_FILE, log
from kernel_matrix.initramfs import GUEST_MARK, PROBE_MARK, PROBE_PARAMETER
from uring_conform.stream import StreamContents, read_stream

POLL_S = 0.2
KVM_PROBE_DEADLINE_S = 30  # a KVM boot to /init takes seconds; this machine's KVM hangs instead
EXIT_MARK = re.compile(re.escape(GUEST_MARK) + r" harness exit status (\d+)")
TAINT_MARK = re.compile(re.escape(GUEST_MARK) + r" kernel tainted (\d+)")
ANSI_ESCAPE = re.compile(r"\x1b(\[[0-9;?]*[A-Za-z]|c)")
PANIC = "Kernel panic - not syncing"  # kernel/panic.c
DMESG_TIME = re.compile(r"^\[\s*\d+\.\d+\]\s*")
# Kinds that frame a kernel report rather than open one: counted with the report they belong to.
FRAMING_SPLATS = ("cut-here", "call-trace")


def load_splat_patterns(path=SPLATS_FILE):
    """The kernel-splat patterns shared with the harness (harness/kmsg.cpp classifies the same):
    a list of {kind, prefix, contains?}; the first entry whose prefix opens the line and whose
    every `contains` string occurs in it names the kind."""
    return [(entry["kind"], entry["prefix"], tuple(entry.get("contains", ())))
            for entry in json.loads(Path(path).read_text())]


SPLAT_PATTERNS = load_splat_patterns()


def splat_kind(text, patterns=SPLAT_PATTERNS):
    """The kind of kernel report a printk line (timestamp removed) opens, or None."""
    for kind, prefix, contains in patterns:
        if text.startswith(prefix) and all(part in text for part in contains):
            return kind
    return None


class StreamReader:
    """Follows the JSONL file qemu writes for ttyS1 with tools/uring_conform's stream reader, the
    format's one owner (noise, torn lines and results the schema refuses are skipped; a later
    result for an id replaces an earlier one). The file is read whole when it has grown: at once
    until the header arrives (its arrival times the boot), then at most every REREAD_S, since
    each read checks every result against the schema."""

    REREAD_S = 2.0

    def __init__(self, path):
        self.path, self.size, self.read_at = Path(path), None, 0.0
        self.contents = StreamContents()

    header = property(lambda self: self.contents.header)
    results = property(lambda self: self.contents.results)
    end = property(lambda self: self.contents.end)

    started = property(lambda self: self.contents.started)
    # The last start line no result followed: the scenario running when the stream stopped.
    unfinished = property(lambda self: self.contents.unfinished)

    @property
    def release(self):
        return (self.header or {}).get("kernel", {}).get("release")

    @property
    def planned(self):
        return (self.header or {}).get("planned")

    def poll(self, final=False):
        """Re-read the stream if it grew (always when final: the boot is over)."""
        try:
            size = self.path.stat().st_size
        except FileNotFoundError:
            return
        now = time.monotonic()
        if size == self.size or (not final and self.header is not None and now - self.read_at < self.REREAD_S):
            return
        self.contents, self.size, self.read_at = read_stream(self.path), size, now


@dataclass
class GuestRun:
    """What one boot left: how it ended, the evidence, and what the harness streamed."""
    label: str
    console: Path
    stream: Path
    reader: StreamReader
    ended: str = ""            # complete, guest-panic, guest-timeout, guest-error
    detail: str = ""
    elapsed_s: float = 0.0
    header_s: float | None = None  # qemu start to the harness's header line: the boot time
    exit_status: int | None = None
    panic_line: str | None = None
    console_text: str = field(default="", repr=False)
    files: Path | None = None  # what the guest sent on ttyS2 (ci/matrix --explore), when it sent anything

    @property
    def console_name(self):
        """The console log as a report names it: relative to the report's directory."""
        return f"logs/{self.console.name}"


def qemu_command(vmlinuz, initrd, console, stream, accel, probe=False, files=None):
    """ttyS0 the console, ttyS1 the harness's JSONL stream, ttyS2 (when `files` is given) the
    files the guest sends back after the run (kernel_matrix.explore)."""
    append = "console=ttyS0 panic=-1 quiet loglevel=5" + (f" {PROBE_PARAMETER}" if probe else "")
    accel_option = "kvm" if accel == "kvm" else "tcg,thread=multi"
    return ["qemu-system-x86_64", "-accel", accel_option, "-cpu", "max",
            "-smp", "2", "-m", "2G", "-nographic", "-monitor", "none", "-nic", "none", "-no-reboot",
            "-serial", f"file:{console}", "-serial", f"file:{stream}",
            *(["-serial", f"file:{files}"] if files else []),
            "-kernel", str(vmlinuz), "-initrd", str(initrd), "-append", append]


class Progress:
    """One status line per boot: rewritten in place on a terminal; in a log, printed when the
    stage changes and then every LOG_EVERY_S seconds."""

    LOG_EVERY_S = 30

    def __init__(self, label):
        self.label, self.stage, self.printed_at = label, None, 0.0
        self.tty = sys.stdout.isatty()

    def show(self, stage, elapsed, reader=None):
        text = f"[matrix] {self.label}: {stage}"
        if reader is not None and reader.header is not None:
            planned = "?" if reader.planned is None else reader.planned
            text += f", {len(reader.results)}/{planned} results"
        text += f", {elapsed:.0f}s elapsed"
        if self.tty:
            print("\r" + text + "\033[K", end="", flush=True)
        elif stage != self.stage or time.monotonic() - self.printed_at >= self.LOG_EVERY_S:
            print(text, flush=True)
            self.stage, self.printed_at = stage, time.monotonic()

    def done(self):
        if self.tty:
            print(flush=True)


def stop(process):
    """End our qemu: SIGTERM, then SIGKILL if it lingers."""
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def boot(command, reader, deadline_s, progress=None):
    """Run qemu until it exits or deadline_s passes, following the stream.
    Returns (timed_out, elapsed_s, header_s, qemu's stderr)."""
    started, header_s = time.monotonic(), None
    with tempfile.TemporaryFile("w+") as stderr:
        process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=stderr, stderr=stderr,
                                   start_new_session=True)
        timed_out = False
        try:
            while process.poll() is None:
                elapsed = time.monotonic() - started
                if elapsed > deadline_s:
                    timed_out = True
                    stop(process)
                    break
                reader.poll()
                if reader.header is not None and header_s is None:
                    header_s = elapsed  # within POLL_S of the truth
                if progress:
                    progress.show("booting" if reader.header is None else "running", elapsed, reader)
                time.sleep(POLL_S)
        except BaseException:
            stop(process)
            raise
        reader.poll(final=True)
        stderr.seek(0)
        return timed_out, time.monotonic() - started, header_s, stderr.read()


def console_tail(text, lines=3, width=160):
    """The last lines of a console log, without firmware escape codes, joined on one line."""
    clean = [ANSI_ESCAPE.sub("", line).strip() for line in text.splitlines()]
    return " | ".join(line[:width] for line in [line for line in clean if line][-lines:])


def kernel_lines(text):
    """Console lines the kernel printed (printk timestamp first): the harness shares the console."""
    return [line.strip() for line in text.splitlines() if DMESG_TIME.match(line.strip())]


def classify(run, timed_out, qemu_stderr, deadline_s):
    """Fill in how the guest ended, with a detail line naming the evidence."""
    text = run.console_text
    status = EXIT_MARK.search(text)
    run.exit_status = int(status.group(1)) if status else None
    panic = next((line.strip() for line in text.splitlines() if PANIC in line), None)
    run.panic_line = DMESG_TIME.sub("", panic) if panic else None
    tail = console_tail(text) or "(empty)"
    if run.reader.end is not None:
        run.ended = "complete"
    elif run.panic_line:
        run.ended, run.detail = "guest-panic", f"{run.panic_line} (console log {run.console_name})"
    elif timed_out:
        run.ended = "guest-timeout"
        run.detail = f"killed after {deadline_s:g}s; console log {run.console_name} ends: {tail}"
    else:
        reason = "harness exited" if status else "guest stopped"
        run.ended, run.detail = "guest-error", f"{reason} without an end line; console log {run.console_name} ends: {tail}"
        qemu_said = qemu_stderr.strip().splitlines()[-1:]
        if qemu_said:
            run.detail += f"; qemu: {qemu_said[0]}"


def run_guest(vmlinuz, initrd, logs_dir, accel, deadline_s, label):
    """Boot once; the console and stream land in logs_dir/<label>.console.log and .stream.jsonl."""
    console, stream = logs_dir / f"{label}.console.log", logs_dir / f"{label}.stream.jsonl"
    files = logs_dir / f"{label}.files.txt"
    for old in (console, stream, files):
        old.unlink(missing_ok=True)
    run = GuestRun(label, console, stream, StreamReader(stream))
    progress = Progress(label)
    progress.show("booting", 0)
    timed_out, run.elapsed_s, run.header_s, qemu_stderr = boot(
        qemu_command(vmlinuz, initrd, console, stream, accel, files=files), run.reader, deadline_s, progress)
    progress.done()
    if files.exists() and files.stat().st_size:
        run.files = files
    else:
        files.unlink(missing_ok=True)
    run.console_text = console.read_text(errors="replace") if console.exists() else ""
    classify(run, timed_out, qemu_stderr, deadline_s)
    return run


def kernel_trouble(run):
    """Lines saying the guest kernel warned, oopsed or was tainted: evidence a report has no field for."""
    found = []
    lines = [DMESG_TIME.sub("", line) for line in kernel_lines(run.console_text)]
    splats = [line for line in lines if splat_kind(line) not in (None, *FRAMING_SPLATS)]
    if splats:
        found.append(f"{len(splats)} kernel splat lines in the console log, first: {splats[0]}")
    taint = TAINT_MARK.search(run.console_text)
    if taint and taint.group(1) != "0":
        found.append(f"guest kernel tainted {taint.group(1)} after the run "
                     "(Documentation/admin-guide/tainted-kernels.rst)")
    return found


def choose_accel(requested, vmlinuz, probe_initrd, scratch):
    """KVM only when asked for, or when /dev/kvm is usable and a probe boot really reaches /init."""
    if requested != "auto":
        return requested
    if not os.access("/dev/kvm", os.R_OK | os.W_OK):
        log("accel: no usable /dev/kvm, using TCG")
        return "tcg"
    console, stream = scratch / "kvm-probe.console.log", scratch / "kvm-probe.stream"
    timed_out, elapsed, _, qemu_stderr = boot(
        qemu_command(vmlinuz, probe_initrd, console, stream, "kvm", probe=True), StreamReader(stream),
        KVM_PROBE_DEADLINE_S)
    text = console.read_text(errors="replace") if console.exists() else ""
    if PROBE_MARK in text:
        log(f"accel: KVM probe boot reached /init in {elapsed:.1f}s, using KVM")
        return "kvm"
    why = "timed out" if timed_out else (qemu_stderr.strip().splitlines() or ["no output"])[0]
    log(f"accel: /dev/kvm exists but a KVM probe boot failed ({why}); falling back to TCG")
    return "tcg"
