"""matrix-report: layout, reasons, plots and reproducibility."""

import base64
import json
import re

import pytest

from conftest import DEFAULT_ID, assert_one_line_error, run_cli
from uring_conform.matrix import build_matrix, render
from uring_conform.report import load_report

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture
def three_kernels(make_report):
    """Given out of version order on purpose."""
    return [
        make_report("6.18.0", {DEFAULT_ID: "pass", "cancel/fd-all[none]": "pass"}),
        make_report("6.1.0-25-amd64", {DEFAULT_ID: "skip"},
                    reasons={DEFAULT_ID: "probe: RECV lacks IORING_RECV_MULTISHOT | EINVAL"},
                    probe={"opcodes": ["NOP"]}),
        make_report("6.12.9+deb12-amd64", {DEFAULT_ID: "fail", "cancel/fd-all[none]": "hang"},
                    reasons={DEFAULT_ID: 'recv <b>"final"</b> CQE kept F_MORE'}),
    ]


def matrix_files(tmp_path, reports):
    out_dir = tmp_path / "out"
    out_dir.mkdir(exist_ok=True)
    run = run_cli("matrix-report", *reports, "--out-dir", out_dir)
    assert run.status == 0, run.stderr
    return (out_dir / "MATRIX.md").read_text(), (out_dir / "matrix.html").read_text()


def test_columns_are_kernels_sorted_by_version(three_kernels):
    matrix = build_matrix([load_report(path) for path in three_kernels])
    assert matrix.columns == ["6.1.0-25-amd64", "6.12.9+deb12-amd64", "6.18.0"]
    rows = {row.label: [cell.text for cell in row.cells] for row in matrix.scenarios.rows}
    assert rows == {DEFAULT_ID: ["skip", "fail", "pass"],
                    "cancel/fd-all[none]": ["—", "hang", "pass"]}


def test_markdown_has_verdicts_with_reason_footnotes(tmp_path, three_kernels):
    markdown, _ = matrix_files(tmp_path, three_kernels)
    assert "| 6.1.0-25-amd64 | 6.12.9+deb12-amd64 | 6.18.0 |" in markdown
    assert f"| `{DEFAULT_ID}` | skip[^1] | fail[^2] | pass |" in markdown
    assert "[^1]: probe: RECV lacks IORING_RECV_MULTISHOT \\| EINVAL" in markdown
    assert "| `RECV` | no | yes | yes |" in markdown
    assert "| `DEFER_TASKRUN` | EINVAL[^" in markdown


def test_html_has_reasons_on_hover_and_two_inline_plots(tmp_path, three_kernels):
    _, page = matrix_files(tmp_path, three_kernels)
    assert '<td class="skip" title="probe: RECV lacks IORING_RECV_MULTISHOT | EINVAL">skip</td>' \
        in page
    # The reason is escaped, not markup.
    assert 'title="recv &lt;b&gt;&quot;final&quot;&lt;/b&gt; CQE kept F_MORE">fail</td>' in page
    images = re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', page)
    assert len(images) == 2
    assert all(base64.b64decode(image).startswith(PNG_MAGIC) for image in images)


def test_output_is_reproducible(tmp_path, three_kernels):
    first = matrix_files(tmp_path, three_kernels)
    second = matrix_files(tmp_path, list(reversed(three_kernels)))
    assert first == second
    assert "2025-02-01T12:00:00Z" in first[0]  # the reports' own time is the only time


def test_default_input_is_reports_dir_without_schema_or_local(tmp_path, make_report, schema):
    reports_dir = tmp_path / "reports"
    (reports_dir / "local").mkdir(parents=True)
    make_report("6.1").rename(reports_dir / "6.1.json")
    make_report("6.99").rename(reports_dir / "local" / "6.99.json")
    (reports_dir / "report.schema.json").write_text(json.dumps(schema))
    run = run_cli("matrix-report", "--reports-dir", reports_dir, "--out-dir", reports_dir)
    assert run.status == 0, run.stderr
    assert "6.99" not in (reports_dir / "MATRIX.md").read_text()
    assert "1 kernels" in run.stdout


def test_same_release_twice_is_told_apart_by_file_name(make_report):
    first = make_report("6.1", file_name="6.1-host.json")
    second = make_report("6.1", file_name="6.1-guest.json")
    matrix = build_matrix([load_report(first), load_report(second)])
    assert matrix.columns == ["6.1 (6.1-guest)", "6.1 (6.1-host)"]


def test_report_without_results_still_renders(make_report):
    markdown, page = render([load_report(make_report("6.1", {}))])
    assert "## Scenarios" in markdown and "data:image/png;base64," in page


def test_no_reports_is_bad_input(tmp_path):
    assert_one_line_error(run_cli("matrix-report", "--reports-dir", tmp_path,
                                  "--out-dir", tmp_path), tmp_path)


def test_bad_report_is_named(tmp_path, make_report):
    bad = tmp_path / "bad.json"
    bad.write_text("[]")
    assert_one_line_error(run_cli("matrix-report", make_report("6.1"), bad,
                                  "--out-dir", tmp_path), bad)
