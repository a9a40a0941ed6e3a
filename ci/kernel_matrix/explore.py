"""ci/matrix --explore: `uring-conform explore` in the guest after the suite, its report and
reproducers carried back to the host.

The suite's JSONL owns ttyS1 (reports/stream.md); the exploration's files travel on their own
port, ttyS2, once explore has exited: each file as a mark line with its name and size, its
bytes in base64 (busybox base64, 76 columns), and an end line. A guest that dies on the way
leaves a block without its end line or with the wrong size, which is dropped with a warning,
never half-read.
"""

import base64
import binascii
import json
import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path

from kernel_matrix.initramfs import GUEST_MARK

FILES_PORT = "/dev/ttyS2"
REPORT = "/tmp/explore.json"
REPRODUCERS = "/tmp/found"
FILE_MARK = "uring-conform-file:"
FILE_END = "uring-conform-file-end"
# One seed for every kernel, so reports of the same --explore run explore the same programs.
DEFAULT_SEED = 1
EXIT_MARK = re.compile(re.escape(GUEST_MARK) + r" explore exit status (\d+)")
BLOCK = re.compile(r"^" + re.escape(FILE_MARK) + r" (\S+) (\d+)\n(.*?)^" + re.escape(FILE_END) + r"$",
                   re.M | re.S)
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


def command(seconds, seed):
    """The guest's explore command line."""
    return shlex.join(["/bin/uring-conform", "explore", "--duration", f"{seconds:g}", "--seed", str(seed),
                       "--report", REPORT, "--emit-reproducer", REPRODUCERS])


def guest_script(seconds, seed):
    """Shell lines /init runs after the suite: explore, its status on the console, then the report
    and every emitted reproducer framed on FILES_PORT (closing a serial port waits until the
    bytes are sent, so poweroff after it loses nothing)."""
    explore = command(seconds, seed)
    return "\n".join([
        f"mkdir -p {REPRODUCERS}",
        f'echo "{GUEST_MARK} starting: {explore}"',
        explore,
        f'echo "{GUEST_MARK} explore exit status $?"',
        f"stty -F {FILES_PORT} raw -echo 115200",
        f"for f in {REPORT} {REPRODUCERS}/*.c; do",
        '    [ -f "$f" ] || continue',
        f'    echo "{FILE_MARK} $(basename "$f") $(wc -c < "$f")"',
        '    base64 "$f"',
        f'    echo "{FILE_END}"',
        f"done > {FILES_PORT}",
    ])


@dataclass
class GuestFiles:
    files: dict = field(default_factory=dict)     # name -> bytes
    warnings: list = field(default_factory=list)


def read_files(path):
    """The complete, intact file blocks in what the guest wrote to FILES_PORT."""
    found = GuestFiles()
    try:
        text = Path(path).read_text(errors="replace").replace("\r", "")
    except FileNotFoundError:
        return found
    for block in BLOCK.finditer(text):
        name, size, body = block.group(1), int(block.group(2)), block.group(3)
        if not NAME.fullmatch(name):
            found.warnings.append(f"{name!r}: not a plain file name, dropped")
            continue
        try:
            data = base64.b64decode("".join(body.split()), validate=True)
        except binascii.Error:
            found.warnings.append(f"{name}: not base64, dropped")
            continue
        if len(data) != size:
            found.warnings.append(f"{name}: {len(data)} bytes arrived of {size}, dropped")
            continue
        found.files[name] = data
    ends = text.count(FILE_MARK)
    if ends > len(found.files) + len(found.warnings):
        found.warnings.append(f"{ends - len(found.files) - len(found.warnings)} file block(s) torn "
                              "(no end line: the guest stopped while sending)")
    return found


def save(out_dir, release, guest_files):
    """Write <out_dir>/<release>.explore.json and the reproducers it names under
    <out_dir>/<release>.explore/ (release: the report's own, else the given one); the report's
    reproducer paths are rewritten to where the files now are. Returns (report path or None,
    reproducer paths)."""
    files = dict(guest_files.files)
    report_bytes = files.pop(Path(REPORT).name, None)
    report = json.loads(report_bytes) if report_bytes is not None else None
    release = (report or {}).get("kernel", {}).get("release") or release
    saved = []
    if files:
        directory = out_dir / f"{release}.explore"
        directory.mkdir(parents=True, exist_ok=True)
        for name, data in files.items():
            (directory / name).write_bytes(data)
            saved.append(directory / name)
    if report is None:
        return None, saved
    for finding in report.get("findings", []):
        name = Path(finding.get("reproducer", "")).name
        if name in files:
            finding["reproducer"] = str(out_dir / f"{release}.explore" / name)
    path = out_dir / f"{release}.explore.json"
    path.write_text(json.dumps(report, indent=2) + "\n")
    return path, saved


def summary(report_path):
    """One line about an explore report: rounds, rates, findings."""
    report = json.loads(Path(report_path).read_text())
    metrics = report["metrics"]
    line = (f"{metrics['rounds']} rounds in {metrics['elapsed_s']:.0f}s ({metrics['rounds_per_s']:.1f}/s, "
            f"{metrics['requests_per_s']:.0f} requests/s, {metrics['percent_of_nop_roundtrip']:.1f} % of the "
            f"NOP round trip), seed {report['options']['seed']}")
    if not report.get("complete"):
        line += ", INCOMPLETE"
    findings = report.get("findings", [])
    if not findings:
        return line + ", no rule broken"
    return line + "; broke: " + "; ".join(
        f"{f['rule']} (round {f['round']}, {f['occurrences']}x{', reproducer ' + f['reproducer'] if f.get('reproducer') else ''})"
        for f in findings)
