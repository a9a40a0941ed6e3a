"""What every part of the matrix runner shares: paths, errors, logging, running host tools."""

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent.parent
CACHE = Path(os.environ.get("URING_CONFORM_CACHE", "/var/cache/uring-conform"))
SPLATS_FILE = REPO / "reports" / "kernel-splats.json"

# The stream format has one owner, tools/uring_conform; the matrix reads streams with its reader.
if str(REPO / "tools") not in sys.path:
    sys.path.insert(0, str(REPO / "tools"))


class UsageError(Exception):
    """Bad command-line input: one line on stderr, exit 2."""


class MatrixError(Exception):
    """The host could not do its part (apt, build, qemu): one line on stderr, exit 1."""


def run_command(main, argv, name):
    """main(argv) with the exit statuses of a command line: an error is one line naming the
    command (2 for usage, 1 for the host's part), never a traceback; Ctrl-C is 130."""
    try:
        return main(argv)
    except UsageError as error:
        print(f"{name}: {error}", file=sys.stderr)
        return 2
    except MatrixError as error:
        print(f"{name}: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"{name}: interrupted", file=sys.stderr)
        return 130


def log(message):
    print(f"[matrix] {message}", flush=True)


def run_quiet(command, what, **kwargs):
    """Run a host command and return its stdout; on failure raise MatrixError with the last line
    it printed."""
    done = subprocess.run(command, capture_output=True, text=True, **kwargs)
    if done.returncode != 0:
        said = done.stderr.strip().splitlines() or done.stdout.strip().splitlines() or ["no output"]
        raise MatrixError(f"{what} failed (exit {done.returncode}): {said[-1]}")
    return done.stdout
