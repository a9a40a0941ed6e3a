"""The repository's own reports/: every report is valid, and MATRIX.md / matrix.html are what
matrix-report renders from them now (so the committed files are fresh and reproducible).
The inline PNGs are compared by presence only: their bytes depend on matplotlib and FreeType."""

import re

import pytest

from conftest import TOOLS_DIR
from uring_conform.matrix import HTML_NAME, MD_NAME, render
from uring_conform.report import load_report, report_paths

REPORTS_DIR = TOOLS_DIR.parent / "reports"
COMMITTED = report_paths(REPORTS_DIR)
PNG_PAYLOAD = re.compile(r"data:image/png;base64,[A-Za-z0-9+/=]+")

needs_reports = pytest.mark.skipif(not COMMITTED, reason=f"no reports in {REPORTS_DIR}")


@needs_reports
@pytest.mark.parametrize("path", COMMITTED, ids=[path.name for path in COMMITTED])
def test_committed_report_is_valid_and_named_after_its_kernel(path):
    report = load_report(path)  # raises on a schema or consistency problem
    assert path.stem == report.release
    assert report.results, f"{path} has no results"


@needs_reports
def test_committed_matrix_matches_the_reports():
    markdown, page = render([load_report(path) for path in COMMITTED])
    for name, fresh in ((MD_NAME, markdown), (HTML_NAME, page)):
        committed = REPORTS_DIR / name
        assert committed.exists(), f"{committed} missing: run ./conform matrix-report"
        assert PNG_PAYLOAD.sub("PNG", committed.read_text()) == PNG_PAYLOAD.sub("PNG", fresh), \
            f"{committed} is stale: run ./conform matrix-report"
