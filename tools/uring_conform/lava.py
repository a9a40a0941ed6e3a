"""LAVA job definitions that boot a kernel with the suite's initramfs and run the suite.

Two jobs per call: one for LAVA's qemu device type (deploy to tmpfs) and a template for a
board booted by u-boot over TFTP, whose placeholders (UPPER_CASE URLs, the u-boot command set)
the lab fills in. Both boot a busybox initramfs whose /init leaves a shell on the console for
LAVA's test shell; LAVA appends its test overlay (and the modules tarball) to that cpio archive
itself ("overlays" of a cpio.newc image, lava_dispatcher's append-overlays action).

In the guest, /bin/uring-conform-lava (RUNNER_SCRIPT) runs the harness with --ktap, turns each
KTAP result line into a `lava-test-case` call inside a `lava-test-set` per family, and prints
the JSON report gzip'd and base64'd between two marker lines, so the lab's job log keeps it;
`uring_conform lava-report LOG` takes it back out of a downloaded log.
"""

import argparse
import base64
import binascii
import gzip
import hashlib
import re
import sys
import zlib
from pathlib import Path

from uring_conform.errors import InputError

REPO = Path(__file__).resolve().parents[2]
INITRAMFS_NAME = "uring-conform-lava.cpio.gz"
QEMU_JOB_NAME, BOARD_JOB_NAME = "qemu-x86_64.yaml", "board-u-boot.yaml"
PROMPT = "uring-conform# "
REPORT_BEGIN, REPORT_END = "uring-conform-report-begin", "uring-conform-report-end"
DEFINITION_NAME = "uring-conform"
# lava_common.schemas.test.definition: a definition's name, and a safe test case / set name.
LAVA_NAME = re.compile(r"^[-_a-zA-Z0-9.]+$")
COMPRESSIONS = {".xz": "xz", ".gz": "gz", ".tgz": "gz", ".bz2": "bz2", ".zst": "zstd"}

# The harness's KTAP (harness/ktap.cpp): scenario lines are indented once under their family;
# directives SKIP, TIMEOUT (hang) and ERROR. LAVA knows pass, fail, skip and unknown
# (lava_dispatcher SignalMatch): a hang or crash is the kernel's failure; an error (the host
# refused something not under test) is neither pass nor fail, so unknown.
#
# Test case names: lava_dispatcher splits a TESTCASE signal's words at "=" and drops a name
# with spaces, and the server puts names in URLs; so an id maps to [-_a-zA-Z0-9.] only:
# "family/scenario[a,k=v]" -> set "family", case "scenario.a.k-v". The same mapping is
# case_name() below; a test runs both on real harness output and checks they agree.
RUNNER_SCRIPT = r"""#!/bin/sh
# uring-conform-lava: run uring-conform in a LAVA test shell; each scenario becomes a LAVA test
# case (set = family), the JSON report is printed (gzip | base64) between marker lines.
# Usage: uring-conform-lava [uring-conform run options]
export TERM=dumb
ktap=/tmp/uring-conform.ktap
report=/tmp/uring-conform.json
rm -f "$ktap" "$report"
uring-conform run --report "$report" --ktap "$ktap" "$@"
status=$?
echo "uring-conform exit status $status"
if [ -f "$ktap" ]; then
    awk '
    /^  (not )?ok [0-9]+ [^ ]+\// {
        split($0, word, " ")
        at = (word[1] == "not") ? 2 : 1
        id = word[at + 2]
        result = (at == 1) ? "pass" : "fail"
        if (word[at + 3] == "#" && word[at + 4] == "SKIP") result = "skip"
        if (word[at + 3] == "#" && word[at + 4] == "ERROR") result = "unknown"
        family = id; sub(/\/.*/, "", family)
        name = id; sub(/^[^\/]*\//, "", name)
        gsub(/\[/, ".", name); gsub(/\]/, "", name); gsub(/,/, ".", name); gsub(/=/, "-", name)
        gsub(/[^-_a-zA-Z0-9.]/, "_", name)
        gsub(/[^-_a-zA-Z0-9.]/, "_", family)
        print family, name, result
    }' "$ktap" | {
        current=
        while read -r family name result; do
            if [ "$family" != "$current" ]; then
                [ -z "$current" ] || lava-test-set stop
                lava-test-set start "$family"
                current=$family
            fi
            lava-test-case "$name" --result "$result"
        done
        [ -z "$current" ] || lava-test-set stop
    }
fi
# Exit 0: every scenario ran; 1: some did not pass (their cases say which); more: the harness
# itself failed, and the run is incomplete.
if [ "$status" -le 1 ]; then run_result=pass; else run_result=fail; fi
lava-test-case uring-conform-run --result "$run_result" --measurement "$status" --units exit-status
if [ -f "$report" ]; then
    # Kernel messages written to the console mid-line would corrupt the dump: only
    # emergencies while it is printed.
    level=$(cut -f1 /proc/sys/kernel/printk)
    dmesg -n 1
    echo "REPORT_BEGIN $(wc -c < "$report") bytes, gzip | base64"
    gzip -c "$report" | base64
    echo "REPORT_END"
    dmesg -n "$level"
    lava-test-case uring-conform-report --result pass
else
    lava-test-case uring-conform-report --result fail
fi
""".replace("REPORT_BEGIN", REPORT_BEGIN).replace("REPORT_END", REPORT_END)


def case_name(result_id):
    """(set, case) LAVA names for a scenario id; the same mapping as RUNNER_SCRIPT's awk."""
    family, _, rest = result_id.partition("/")
    name = rest.replace("[", ".").replace("]", "").replace(",", ".").replace("=", "-")
    return re.sub(r"[^-_a-zA-Z0-9.]", "_", family), re.sub(r"[^-_a-zA-Z0-9.]", "_", name)


def compression_of(url):
    for suffix, compression in COMPRESSIONS.items():
        if url.endswith(suffix):
            return compression
    return None


def _url(url, sha256=None, **extra):
    image = {"url": url}
    compression = compression_of(url)
    if compression:
        image["compression"] = compression
    if sha256:
        image["sha256sum"] = sha256
    image.update(extra)
    return image


def _ramdisk(initramfs_url, sha256, modules_url, extra):
    """The initramfs as a cpio.newc image LAVA appends its overlay (and the modules) to."""
    overlays = {"lava": True}
    if modules_url:
        overlays["modules"] = _url(modules_url, format="tar", path="/")
    return _url(initramfs_url, sha256, **extra, format="cpio.newc", overlays=overlays)


def _test_action(run_options, minutes):
    # sh runs it: the matrix's initramfs builder writes extra files without the exec bit.
    steps = ["sh /bin/uring-conform-lava " + " ".join(map(_shell_quote, run_options))]
    return {"test": {
        "timeout": {"minutes": minutes},
        "definitions": [{
            "from": "inline", "name": DEFINITION_NAME, "path": "inline/uring-conform.yaml",
            "repository": {
                "metadata": {
                    "format": "Lava-Test Test Definition 1.0", "name": DEFINITION_NAME,
                    "description": "io_uring conformance: one test case per scenario variant "
                                   "(set = family); the JSON report is in the log between "
                                   f"{REPORT_BEGIN} and {REPORT_END}"},
                "run": {"steps": steps}}}]}}


def _shell_quote(text):
    return text if re.fullmatch(r"[-_a-zA-Z0-9.,=/:+]+", text) else "'" + text.replace(
        "'", "'\\''") + "'"


def _header(job_name, device_type, options):
    return {
        "device_type": device_type,
        "job_name": job_name,
        "timeouts": {"job": {"minutes": options.job_minutes}, "connection": {"minutes": 2}},
        "priority": "medium",
        "visibility": "public",
    }


def run_options(options, environment):
    run = ["--profile", options.profile, "--environment", environment]
    if options.filter:
        run += ["--filter", options.filter]
    if options.timeout:
        run += ["--timeout", f"{options.timeout:g}"]
    return run


def qemu_job(options, initramfs_url, sha256):
    kernel_args = f"console=ttyS0,115200 rdinit=/init loglevel=5 {options.kernel_args}".strip()
    job = _header(f"uring-conform {options.profile} on {_basename(options.kernel)} (qemu)",
                  "qemu", options)
    job["context"] = {"arch": "amd64", "memory": 1024, "extra_options": ["-smp", "2"]}
    job["actions"] = [
        {"deploy": {
            "to": "tmpfs", "os": "oe", "timeout": {"minutes": 15},
            "images": {
                "kernel": _url(options.kernel, image_arg=f"-kernel {{kernel}} -append "
                                                         f"\"{kernel_args}\""),
                "ramdisk": _ramdisk(initramfs_url, sha256, options.modules,
                                    {"image_arg": "-initrd {ramdisk}"})}}},
        {"boot": {"method": "qemu", "media": "tmpfs", "timeout": {"minutes": 10},
                  "prompts": [PROMPT]}},
        _test_action(run_options(options, "lava-qemu"), options.test_minutes),
    ]
    return job


def board_job(options, initramfs_url, sha256):
    """Template: DEVICE_TYPE and DTB_URL are placeholders; "ramdisk" is the u-boot command set
    of LAVA's device-type templates that loads kernel, ramdisk and dtb over TFTP."""
    job = _header(f"uring-conform {options.profile} on {_basename(options.kernel)} (board)",
                  "DEVICE_TYPE", options)
    deploy = {"to": "tftp", "os": "oe", "timeout": {"minutes": 15},
              "kernel": _url(options.kernel, type="image"),
              "dtb": _url("DTB_URL"),
              "ramdisk": _ramdisk(initramfs_url, sha256, None, {"header": "u-boot"})}
    if options.modules:
        deploy["modules"] = _url(options.modules)
        deploy["ramdisk"]["install_modules"] = True
    job["actions"] = [
        {"deploy": deploy},
        {"boot": {"method": "u-boot", "commands": "ramdisk", "timeout": {"minutes": 10},
                  "prompts": [PROMPT]}},
        _test_action(run_options(options, "lava-board"), options.test_minutes),
    ]
    # A tftp ramdisk takes install_overlay, not the tmpfs "overlays" form.
    ramdisk = deploy["ramdisk"]
    ramdisk.pop("format"), ramdisk.pop("overlays")
    ramdisk["install_overlay"] = True
    return job


def _basename(url):
    return url.rstrip("/").rsplit("/", 1)[-1] or url


def validate_job(job):
    """lava_common's own schema check (Debian package lava-common), strict like the server."""
    try:
        from lava_common.schemas import validate
    except ImportError:
        raise InputError("lava_common", "not importable (apt-get install lava-common; it needs "
                                        "/usr/bin/python3)") from None
    from voluptuous import Invalid

    try:
        validate(job, strict=True, extra_context_variables=[])
    except Invalid as error:
        where = "/".join(str(part) for part in error.path)
        raise InputError(job["job_name"], f"not a valid LAVA job at {where}: {error.msg}") \
            from None


def job_yaml(job, comment):
    import yaml

    lines = "".join(f"# {line}\n".replace("# \n", "#\n") for line in comment.splitlines())
    return lines + yaml.safe_dump(job, sort_keys=False, default_flow_style=False, width=100)


QEMU_COMMENT = """uring-conform on LAVA's qemu device type, generated by `uring_conform lava`.
Submit: lavacli jobs submit {name}
Results: one test case per scenario variant in test suite *_uring-conform (sets = families);
the JSON report: lavacli jobs logs --raw JOB_ID > log.yaml && \\
  PYTHONPATH=tools /usr/bin/python3 -m uring_conform lava-report log.yaml -o REPORT.json"""
BOARD_COMMENT = """Template for a board booted by u-boot over TFTP, generated by `uring_conform lava`.
Before submitting replace DEVICE_TYPE (the lab's device type) and DTB_URL (the board's device
tree); "commands: ramdisk" is the u-boot command set of LAVA's device-type templates. The
initramfs holds an x86-64 harness unless it was built with --binary for the board's arch.
Results come back as for {qemu}."""


def build_initramfs(path, binary):
    """The matrix's busybox initramfs (ci/kernel_matrix/initramfs.py) with a shell on the
    console for LAVA instead of a one-shot run, plus RUNNER_SCRIPT as bin/uring-conform-lava."""
    _refuse_non_regular(path)
    ci = str(REPO / "ci")
    if ci not in sys.path:
        sys.path.insert(0, ci)
    from kernel_matrix import initramfs
    from kernel_matrix.common import MatrixError

    # The matrix /init runs this command and powers off when it returns: here the command is a
    # login shell on the console (cttyhack gives it the console as controlling terminal), so
    # LAVA sees PROMPT and drives its test shell through it.
    shell = f"while true; do PS1='{PROMPT}' setsid cttyhack /bin/sh; done"
    try:
        initramfs.build(path, binary, shell,
                        {"bin/uring-conform-lava": RUNNER_SCRIPT.encode()})
    except MatrixError as error:
        raise InputError(path, str(error)) from None


def write_jobs(options):
    """Write the jobs (and the initramfs unless --initramfs names one) into options.out."""
    from uring_conform.files import write_output

    out = Path(options.out)
    out.mkdir(parents=True, exist_ok=True)
    for url_option in ("kernel", "modules", "initramfs"):
        url = getattr(options, url_option)
        if url is not None and not re.match(r"^(https?|file|ftp)://\S+$", url):
            raise InputError(f"--{url_option}", f"not a URL (http://, https://, file://): {url!r}")
    sha256 = None
    initramfs_url = options.initramfs
    if initramfs_url is None:
        image = out / INITRAMFS_NAME
        binary = Path(options.binary) if options.binary else _static_harness()
        build_initramfs(image, binary)
        sha256 = hashlib.sha256(image.read_bytes()).hexdigest()
        initramfs_url = image.resolve().as_uri()
        print(f"{image}: initramfs with {binary}; the jobs point at {initramfs_url}: for a "
              "remote lab upload it and rerun with --initramfs URL")
    written = []
    for name, job, comment in (
            (QEMU_JOB_NAME, qemu_job(options, initramfs_url, sha256),
             QEMU_COMMENT.format(name=QEMU_JOB_NAME)),
            (BOARD_JOB_NAME, board_job(options, initramfs_url, sha256),
             BOARD_COMMENT.format(qemu=QEMU_JOB_NAME))):
        validate_job(job)
        target = out / name
        _refuse_non_regular(target)
        # The jobs are generated: regenerating them is what this command is for.
        write_output(target, job_yaml(job, comment), force=True)
        written.append(target)
    for target in written:
        print(f"{target}: valid LAVA job (lava_common schema)")
    return written


def _refuse_non_regular(path):
    if path.is_symlink() or (path.exists() and not path.is_file()):
        raise InputError(path, "exists and is not a regular file; not replacing it")


def _static_harness():
    ci = str(REPO / "ci")
    if ci not in sys.path:
        sys.path.insert(0, ci)
    from kernel_matrix.cli import harness_binary
    from kernel_matrix.common import MatrixError, UsageError

    try:
        return harness_binary(None)
    except (MatrixError, UsageError) as error:
        raise InputError("static harness", str(error)) from None


def _log_lines(text):
    """Target output lines of a LAVA job log: `lavacli jobs logs --raw` YAML (lvl target) or
    plain console text."""
    import yaml

    try:
        entries = yaml.safe_load(text)
    except yaml.YAMLError:
        entries = None
    if isinstance(entries, list) and all(isinstance(entry, dict) for entry in entries):
        for entry in entries:
            if entry.get("lvl") == "target" and isinstance(entry.get("msg"), str):
                yield from entry["msg"].splitlines()
        return
    yield from text.splitlines()


def extract_report(text, source):
    """The JSON report RUNNER_SCRIPT printed, as bytes; the last dump wins."""
    dumps, current = [], None
    for line in _log_lines(text):
        line = line.strip()
        if line.startswith(REPORT_BEGIN):
            current = []
        elif line.startswith(REPORT_END) and current is not None:
            dumps.append("".join(current))
            current = None
        elif current is not None and re.fullmatch(r"[A-Za-z0-9+/=]+", line):
            current.append(line)
    if not dumps:
        raise InputError(source, f"no complete report between {REPORT_BEGIN} and {REPORT_END}"
                                 " (did the test shell reach the end?)")
    try:
        return gzip.decompress(base64.b64decode(dumps[-1], validate=True))
    except (binascii.Error, OSError, EOFError, zlib.error) as error:
        raise InputError(source, f"the report dump is damaged ({error}); console noise inside "
                                 "it? the plain report is still in the job's log") from None


def report_from_log(log_path, output, force):
    from uring_conform.files import parse_json, read_bytes, write_output
    from uring_conform.report import Report, check_document

    data = extract_report(read_bytes(log_path).decode("utf-8", "replace"), log_path)
    try:
        document = parse_json(data.decode("utf-8"))
    except (ValueError, RecursionError) as error:
        raise InputError(log_path, f"the extracted report is not JSON: {error}") from None
    check_document(log_path, document)
    write_output(output, data.decode("utf-8"), force)
    report = Report(str(output), document)
    print(f"{output}: kernel {report.release}, {len(report.results)} results")


def _lava_command(args):
    if args.job_minutes <= args.test_minutes + 25:
        raise InputError("--job-minutes", f"{args.job_minutes} leaves no room for deploy (15) and "
                                          f"boot (10) besides --test-minutes {args.test_minutes}")
    write_jobs(args)
    return 0


def _lava_report_command(args):
    report_from_log(args.log, args.output, args.force)
    return 0


def _minutes(text):
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number of minutes: {text!r}") from None
    if not 1 <= value <= 24 * 60:
        raise argparse.ArgumentTypeError(f"must be 1 to 1440 minutes: {text!r}")
    return value


def register_commands(command):
    """The `lava` and `lava-report` subcommands, given cli.build_parser's command()."""
    lava = command(
        "lava", _lava_command, "write LAVA job definitions that run the suite",
        "Write LAVA jobs into DIR: qemu-x86_64.yaml (LAVA's qemu device type, deploy to tmpfs) "
        "and board-u-boot.yaml (a u-boot/TFTP template with DEVICE_TYPE and DTB_URL "
        "placeholders). Each boots KERNEL with the suite's busybox initramfs, runs the suite in "
        "LAVA's test shell, reports every scenario variant as a test case (set = family) and "
        "keeps the JSON report in the job log (see lava-report). Without --initramfs the "
        "initramfs is built into DIR from the static harness. Every job is checked with "
        "lava_common's schema validator before it is written.",
        "python3 -m uring_conform lava --kernel https://example.org/vmlinuz --out lava-jobs")
    lava.add_argument("--kernel", required=True, metavar="URL", help="kernel image (vmlinuz)")
    lava.add_argument("--modules", metavar="URL",
                      help="modules tarball (lib/modules/..., .tar.xz/.tar.gz) unpacked at /")
    lava.add_argument("--initramfs", metavar="URL",
                      help="an initramfs made by this command (default: build one into DIR)")
    lava.add_argument("--out", required=True, metavar="DIR", help="where to write the jobs")
    lava.add_argument("--binary", metavar="PATH",
                      help="static harness for the initramfs (default: build-static/, compiled "
                           "as ci/matrix does; another arch's build for a board)")
    lava.add_argument("--profile", choices=("quick", "full", "stress"), default="quick")
    lava.add_argument("--filter", metavar="GLOB", help="only these scenario ids (run --filter)")
    lava.add_argument("--timeout", type=float, metavar="SECONDS",
                      help="watchdog per scenario (run --timeout)")
    lava.add_argument("--kernel-args", default="", metavar="TEXT",
                      help="appended to the qemu job's kernel command line")
    lava.add_argument("--test-minutes", type=_minutes, default=30,
                      help="test action timeout (default 30; TCG needs ~2 for quick)")
    lava.add_argument("--job-minutes", type=_minutes, default=60,
                      help="whole job timeout (default 60)")

    report = command(
        "lava-report", _lava_report_command, "take the JSON report out of a LAVA job log",
        "Extract the JSON report a uring-conform LAVA job printed into its log (between "
        f"{REPORT_BEGIN} and {REPORT_END}), check it against the schema and write it. LOG is "
        "`lavacli jobs logs --raw JOB_ID` output or a plain console log.",
        "python3 -m uring_conform lava-report log.yaml -o reports/local/board.json")
    report.add_argument("log", metavar="LOG", help="job log, '-' for stdin")
    report.add_argument("-o", "--output", required=True, metavar="REPORT.json")
    report.add_argument("--force", action="store_true", help="overwrite an existing output")
