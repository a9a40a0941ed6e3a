"""Property-based: whatever garbage reaches validate, compare, export, matrix-report,
assemble or ktap-parse, the answer is one stderr line naming the file and exit 2 (or, for the
tolerant readers, success with a valid result): never a traceback, never a half-written output.
"""

import json

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from conftest import DATA_DIR, assert_one_line_error, report_document, run_cli
from uring_conform.ktap import count_statuses, parse_ktap
from uring_conform.report import load_report, schema_problem

VALID_REPORT_TEXT = (DATA_DIR / "report-6.1.json").read_text()
# Fixtures that hypothesis may share across examples (function-scoped ones may not be).
fixture_settings = settings(suppress_health_check=[HealthCheck.function_scoped_fixture])

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.text(max_size=12), children, max_size=4),
    max_leaves=20)


@pytest.fixture(scope="module")
def work_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("garbage")


@pytest.fixture(scope="module")
def valid_report(work_dir):
    path = work_dir / "valid.json"
    path.write_text(VALID_REPORT_TEXT)
    return path


def command_lines(bad, valid):
    """Each command that reads a report, with the bad file in each position it can take."""
    return [("validate", bad), ("export", "--kcidb", bad),
            ("compare", valid, bad), ("compare", bad, valid),
            ("matrix-report", valid, bad, "--out-dir", valid.parent)]


def assert_rejected_everywhere(bad, valid):
    for argv in command_lines(bad, valid):
        assert_one_line_error(run_cli(*argv), bad)


@given(content=st.binary(max_size=300))
def test_garbage_bytes_are_rejected(work_dir, valid_report, content):
    bad = work_dir / "garbage.json"
    bad.write_bytes(content)
    assert_rejected_everywhere(bad, valid_report)


@given(cut=st.integers(min_value=0, max_value=len(VALID_REPORT_TEXT.rstrip()) - 1))
def test_truncated_report_is_rejected(work_dir, valid_report, cut):
    bad = work_dir / "truncated.json"
    bad.write_text(VALID_REPORT_TEXT[:cut])
    assert_rejected_everywhere(bad, valid_report)


@given(value=json_values)
def test_arbitrary_json_is_rejected(work_dir, valid_report, value):
    bad = work_dir / "arbitrary.json"
    bad.write_text(json.dumps(value))
    assert_rejected_everywhere(bad, valid_report)


def _paths(node, prefix=()):
    yield prefix
    if isinstance(node, dict):
        for key, child in node.items():
            yield from _paths(child, prefix + (key,))
    elif isinstance(node, list):
        for index, child in enumerate(node):
            yield from _paths(child, prefix + (index,))


VALID_DOCUMENT = json.loads(VALID_REPORT_TEXT)
ALL_PATHS = [path for path in _paths(VALID_DOCUMENT) if path]


@given(path=st.sampled_from(ALL_PATHS), replacement=json_values, delete=st.booleans())
@settings(max_examples=50)  # a still-valid mutation renders the matrix plots
def test_mutated_report_is_rejected_or_still_valid(work_dir, valid_report, path, replacement,
                                                  delete):
    document = json.loads(VALID_REPORT_TEXT)
    parent = document
    for key in path[:-1]:
        parent = parent[key]
    if delete:
        del parent[path[-1]]
    else:
        parent[path[-1]] = replacement
    mutated = work_dir / "mutated.json"
    mutated.write_text(json.dumps(document))
    for argv in command_lines(mutated, valid_report):
        run = run_cli(*argv)
        if run.status != 2:
            # Some mutations keep the report valid (e.g. a new metric); then it must load.
            assert run.status in (0, 1), run.stderr
            assert load_report(mutated).data == document
        else:
            assert_one_line_error(run, mutated)


@given(lines=st.lists(st.one_of(st.text(max_size=60), st.sampled_from([
    '{"type": "end", "duration_s": 1}', '{"type": "result"}', '{"type": "header"}',
    '{"type": "start", "id": "multishot/a[none]", "index": 0, "planned": 1}',
    json.dumps({"type": "header", **report_document("6.1")})])), max_size=6))
@fixture_settings
def test_garbage_stream_gives_a_valid_report_or_one_line(tmp_path, lines):
    stream = tmp_path / "garbage.jsonl"
    stream.write_text("\n".join(lines))
    out = tmp_path / "report.json"
    out.unlink(missing_ok=True)
    run = run_cli("assemble", stream, "-o", out)
    if run.status == 0:
        assert schema_problem(json.loads(out.read_text())) is None
    else:
        assert_one_line_error(run, stream)
        assert not out.exists()


@given(text=st.lists(st.sampled_from(["KTAP version 1", "1..1", "1..2", "ok 1 a", "not ok 2 b",
                                      "  KTAP version 1", "  1..1", "  ok 1 c", "# diag",
                                      "ok 1", "noise", "ok 1 x # TIMEOUT"]) | st.text(max_size=15),
                     max_size=8))
@example(text=["KTAP version 1", "1..2", "ok 1 a", "not ok 2 b", "# diag"])
@fixture_settings
def test_ktap_garbage_parses_or_gives_one_line(tmp_path, text):
    path = tmp_path / "garbage.ktap"
    path.write_text("\n".join(text) + "\n")
    run = run_cli("ktap-parse", path)
    if run.status != 0:
        assert_one_line_error(run, f"{path}:")
        return
    # Accepted: then it obeys what ktap.rst requires at every level, and the printed tree
    # and counts are that document's.
    document = parse_ktap("\n".join(text) + "\n")
    assert_well_formed_ktap(document, [line.strip() for line in text])
    printed = run.stdout.splitlines()
    assert printed[0].startswith(f"{document.version}, ")
    leaves = sum(count for count in count_statuses(document).values())
    assert printed[-1] == "no tests" if leaves == 0 else \
        sum(int(part.rsplit(" ", 1)[1]) for part in printed[-1].split(", ")) == leaves


def assert_well_formed_ktap(document, stripped_lines):
    assert document.version in stripped_lines
    assert [test.number for test in document.tests] == list(range(1, len(document.tests) + 1))
    assert document.plan is None or document.plan == len(document.tests)
    for test in document.tests:
        if test.subtests:
            assert_well_formed_ktap(test.subtests, stripped_lines)
