"""`uring-conform explore` end to end: --help, bad input (one line, exit 2, before anything
runs) and a tiny real exploration whose report fits reports/explore.schema.json.

Drives the self-test build of the CLI (the same main.cpp; URING_CONFORM_SELFTEST=path/to/
uring-conform-selftest, which meson test sets); without it these tests skip, saying so.
"""

import json
import os
import subprocess
from pathlib import Path

import jsonschema
import pytest

SELFTEST_ENV = "URING_CONFORM_SELFTEST"
EXPLORE_SCHEMA = Path(__file__).resolve().parents[2] / "reports" / "explore.schema.json"
# A three-round run measures the NOP rate (0.5 s) and the raw mix (1 s) first.
RUN_TIMEOUT_S = 120


@pytest.fixture(scope="module")
def binary():
    path = os.environ.get(SELFTEST_ENV)
    if not path:
        pytest.skip(f"{SELFTEST_ENV} is not set (path to a built uring-conform-selftest)")
    if not os.access(path, os.X_OK):
        pytest.skip(f"{SELFTEST_ENV}={path} is not an executable file")
    return Path(path)


def explore(binary, *argv):
    return subprocess.run([str(binary), "explore", *map(str, argv)], capture_output=True, text=True,
                          timeout=RUN_TIMEOUT_S)


def test_help_names_every_option_and_step(binary):
    done = explore(binary, "--help")
    assert done.returncode == 0
    for option in ("--seed", "--duration", "--rounds", "--setup", "--ops", "--report", "--emit-reproducer",
                   "--shrink-budget"):
        assert option in done.stdout
    assert "timeout-multishot" in done.stdout and "cancel" in done.stdout
    assert "--selftest-ghost" not in done.stdout  # the hidden rule-breaking step stays hidden


@pytest.mark.parametrize("argv,said", [
    pytest.param(["--seed", "banana"], "--seed banana: not a number", id="seed-not-a-number"),
    pytest.param(["--seed", "18446744073709551616"], "not a number from 0 to 18446744073709551615",
                 id="seed-too-big"),
    pytest.param(["--seed", "-3"], "--seed", id="seed-negative"),
    pytest.param(["--ops", "nop,teleport"], "--ops: unknown step 'teleport' (steps: nop,", id="unknown-op"),
    pytest.param(["--rounds", "0"], "--rounds", id="rounds-zero"),
    pytest.param(["--duration", "0"], "--duration", id="duration-zero"),
    pytest.param(["--rounds", "3", "--duration", "5"], "excludes", id="rounds-and-duration"),
    pytest.param(["--setup", "turbo"], "--setup", id="unknown-setup"),
    pytest.param(["--rounds", "1", "--emit-reproducer", "/nonexistent/dir"], "/nonexistent/dir: not a directory",
                 id="emit-dir-missing"),
])
def test_bad_input_is_one_line_and_exit_2(binary, argv, said):
    done = explore(binary, *argv)
    assert done.returncode == 2, done.stderr
    assert done.stderr.startswith("uring-conform: error: ") and done.stderr.count("\n") == 1
    assert said in done.stderr
    assert done.stdout == ""


def test_report_into_a_directory_is_refused_before_exploring(binary, tmp_path):
    done = explore(binary, "--rounds", "1", "--report", tmp_path)
    assert done.returncode == 2 and done.stderr.count("\n") == 1
    assert f"--report {tmp_path}: not a regular file" in done.stderr


def test_three_rounds_give_a_report_the_schema_accepts(binary, tmp_path):
    report_path = tmp_path / "explore.json"
    done = explore(binary, "--rounds", 3, "--seed", 1, "--report", report_path, "--quiet")
    # 1 is a finding (a broken rule), not a usage problem; anything else is.
    assert done.returncode in (0, 1), done.stderr
    report = json.loads(report_path.read_text())
    jsonschema.validate(report, json.loads(EXPLORE_SCHEMA.read_text()))
    assert report["complete"] is True and report["options"]["seed"] == 1
    assert report["metrics"]["rounds"] == 3 and report["metrics"]["requests"] > 0
    assert report["metrics"]["nop_roundtrip_per_s"] > 0
    assert (done.returncode == 1) == bool(report["findings"])
    assert sum(report["violations_by_rule"].values()) >= len(report["findings"])


def test_a_seed_names_the_same_programs(binary, tmp_path):
    """The ops drawn depend on the seed alone (kernel timing changes CQEs, never the program)."""
    ops = []
    for attempt in ("a", "b"):
        path = tmp_path / f"{attempt}.json"
        done = explore(binary, "--rounds", 3, "--seed", 42, "--setup", "none", "--report", path, "--quiet")
        assert done.returncode in (0, 1), done.stderr
        ops.append(json.loads(path.read_text())["ops"])
    assert ops[0] == ops[1] and ops[0]
