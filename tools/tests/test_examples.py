"""Every example command in the tools' --help texts and in tools/README.md runs as written.

Each runs with bash in a scratch copy of the tree (reports/ copied, tools/ linked), so that
examples which write (matrix-report, /tmp/ outputs) change nothing in the working tree and
can run twice; "/tmp/" in an example becomes this test's own directory. `python3` in an
example is Debian's interpreter (the one running these tests). The harness example needs
the built uring-conform: $URING_CONFORM_BINARY, else build/uring-conform, else it skips.
"""

import os
import re
import shutil
import subprocess
import sys

import pytest

from conftest import TOOLS_DIR
from uring_conform.cli import build_parser

REPO = TOOLS_DIR.parent
README = TOOLS_DIR / "README.md"
HARNESS = "build/uring-conform"
# Without --initramfs the lava example first builds this (a whole -Dstatic build: minutes),
# in the real tree; where it is not built yet, that example skips.
STATIC_HARNESS = REPO / "build-static" / "uring-conform"


def help_examples():
    """(where, command) for the top-level epilog and each subcommand's example line."""
    parser = build_parser()
    found = [("--help", line.strip().removeprefix("PYTHONPATH=tools "))
             for line in parser.epilog.splitlines()[1:] if line.strip()]
    subcommands = parser._subparsers._group_actions[0].choices  # argparse keeps them here only
    for name, sub in subcommands.items():
        lines = [line.strip() for line in sub.epilog.splitlines()[1:] if line.strip()]
        found += [(f"{name} --help", line) for line in lines]
    return found


def readme_examples():
    """The commands in the ```sh block under "## Examples", continuations joined."""
    section = README.read_text().split("## Examples", 1)[1]
    block = re.search(r"```sh\n(.*?)```", section, re.S).group(1)
    commands = [re.sub(r"\s+#\s.*$", "", command).strip()
                for command in block.replace("\\\n", " ").splitlines()]
    return [("tools/README.md", command) for command in commands
            if command and not command.startswith("export ")]


EXAMPLES = help_examples() + readme_examples()
# Examples known to be wrong, owned elsewhere; strict, so a fix makes the marker go.
BROKEN = {"lava-report": "its example reads log.yaml, a LAVA job log the tree does not hold"}


def example_param(where, command):
    marks = [pytest.mark.xfail(strict=True, reason=reason)
             for name, reason in BROKEN.items() if where == f"{name} --help"]
    return pytest.param(where, command, marks=marks, id=f"{where}: {command}")


def harness_binary():
    candidate = os.environ.get("URING_CONFORM_BINARY") or str(REPO / HARNESS)
    return candidate if os.access(candidate, os.X_OK) else None


@pytest.fixture
def scratch_tree(tmp_path):
    """A tree with the committed reports (copied) and tools/ (linked), plus a python3 shim."""
    tree = tmp_path / "tree"
    tree.mkdir()
    shutil.copytree(REPO / "reports", tree / "reports",
                    ignore=shutil.ignore_patterns("local"))
    (tree / "tools").symlink_to(TOOLS_DIR)
    shim = tmp_path / "bin"
    shim.mkdir()
    (shim / "python3").symlink_to(sys.executable)
    return tree, shim


def test_examples_were_found():
    assert len(help_examples()) >= 8
    assert len(readme_examples()) >= 7
    assert any("ktap-parse -" in command and "--ktap - " in command
               for _, command in EXAMPLES)


@pytest.mark.parametrize("where,command", [example_param(*example) for example in EXAMPLES])
def test_example_runs(scratch_tree, tmp_path, where, command):
    tree, shim = scratch_tree
    if command.startswith(HARNESS):
        binary = harness_binary()
        if binary is None:
            pytest.skip(f"needs the built harness ({HARNESS} or $URING_CONFORM_BINARY)")
        (tree / "build").mkdir()
        (tree / HARNESS).symlink_to(binary)
    if "uring_conform lava " in command and "--initramfs" not in command and not STATIC_HARNESS.exists():
        pytest.skip(f"needs {STATIC_HARNESS.relative_to(REPO)} (./conform lava or ci/matrix builds it)")
    outputs = tmp_path / "out"
    outputs.mkdir()
    env = dict(os.environ, PATH=f"{shim}:{os.environ['PATH']}", PYTHONPATH="tools",
               PYTHONDONTWRITEBYTECODE="1")
    completed = subprocess.run(["bash", "-o", "pipefail", "-c",
                                command.replace("/tmp/", f"{outputs}/")],
                               cwd=tree, env=env, capture_output=True, text=True, timeout=300)
    # compare exits 1 when NEW is worse, which the committed kernels are: that is its answer.
    allowed = (0, 1) if " compare " in f" {command} " else (0,)
    assert completed.returncode in allowed, f"{where}: {command}\n{completed.stderr}"
    assert "error:" not in completed.stderr and "Traceback" not in completed.stderr, \
        completed.stderr
    # Something came of it: a printed answer, or the file an -o / --json example names.
    assert completed.stdout.strip() or list(outputs.iterdir()), \
        f"{where}: {command} printed and wrote nothing"
