"""ci/tests: unit tests of the matrix runner's host side (no qemu, no apt downloads).
Run: pytest-3 ci/tests"""

import sys
from pathlib import Path

import pytest

CI = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(CI))

from kernel_matrix.guest import GuestRun, StreamReader  # noqa: E402


@pytest.fixture
def make_run(tmp_path):
    """Factory: a finished GuestRun with the given stream lines and console text."""
    def make(stream_lines=(), console_text="", label="6.1.0-56-amd64"):
        stream = tmp_path / f"{label}.stream.jsonl"
        stream.write_text("".join(line + "\n" for line in stream_lines))
        run = GuestRun(label, tmp_path / f"{label}.console.log", stream, StreamReader(stream))
        run.reader.poll()
        run.console_text = console_text
        return run
    return make
