"""matrix-report: what differs first, layout, reasons, plots, reproducibility, and the page as
headless Chromium renders it."""

import base64
import json
import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest

from conftest import DEFAULT_ID, TOOLS_DIR, assert_one_line_error, run_cli
from uring_conform.matrix import build_matrix, render
from uring_conform.report import load_report, report_paths

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
    assert "| 6.1.0-25-amd64, host | 6.12.9+deb12-amd64, host | 6.18.0, host |" in markdown
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


class Sections(HTMLParser):
    """data-id of the rows in each <section id=...> of the page, and each details' summary."""

    def __init__(self):
        super().__init__()
        self.section, self.rows, self.hidden, self.summaries = None, {}, set(), []
        self._in_summary = False

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "section":
            self.section = attrs["id"]
        elif tag == "tr" and "data-id" in attrs:
            self.rows.setdefault(self.section, []).append(attrs["data-id"])
            if "hidden" in (attrs.get("class") or "").split():
                self.hidden.add(attrs["data-id"])
        elif tag == "summary":
            self._in_summary = True
            self.summaries.append("")

    def handle_endtag(self, tag):
        if tag == "summary":
            self._in_summary = False

    def handle_data(self, data):
        if self._in_summary:
            self.summaries[-1] += data


def parse_page(page):
    parser = Sections()
    parser.feed(page)
    return parser


def differing_ids(reports):
    """Independently of matrix.py: ids whose verdict (or absence) is not the same everywhere."""
    by_id = [report.results_by_id() for report in reports]
    ids = {result_id for results in by_id for result_id in results}
    return {result_id for result_id in ids
            if len({(results.get(result_id) or {}).get("verdict") for results in by_id}) > 1}


@pytest.fixture
def with_same_everywhere(make_report):
    same = "cancel/same[none]"
    return [
        make_report("6.1", {DEFAULT_ID: "skip", same: "pass"}, reasons={DEFAULT_ID: "no RECV"},
                    run={"environment": "qemu-tcg"}),
        make_report("6.12", {DEFAULT_ID: "fail", same: "pass", "cancel/only-here[none]": "pass"},
                    reasons={DEFAULT_ID: "final CQE kept\nF_MORE"}, run={"environment": "qemu-tcg"}),
        make_report("6.18", {DEFAULT_ID: "pass", same: "pass"}),
    ]


def test_differences_come_first_with_reasons_inline(tmp_path, with_same_everywhere):
    markdown, page = matrix_files(tmp_path, with_same_everywhere)
    sections = parse_page(page).rows
    assert sections["differences"] == [DEFAULT_ID, "cancel/only-here[none]"]
    assert "cancel/same[none]" in sections["everything"]
    assert page.index('id="differences"') < page.index('id="everything"')
    # Markdown: verdicts with their one-line reasons in the row, before the full tables.
    assert (f"| `{DEFAULT_ID}` | skip: no RECV | fail: final CQE kept F_MORE | pass |"
            in markdown)
    assert "| `cancel/only-here[none]` | — | pass | — |" in markdown
    assert markdown.index("## What differs") < markdown.index("## Everything")
    assert "Verdicts that differ (2 of 3 scenario variants)" in markdown


def test_guest_and_host_columns_are_labelled(tmp_path, with_same_everywhere):
    markdown, page = matrix_files(tmp_path, with_same_everywhere)
    assert "| 6.1, guest (qemu-tcg) | 6.12, guest (qemu-tcg) | 6.18, host |" in markdown
    bar = page[page.index('<div id="bar">'):page.index("</div>")]
    assert re.findall(r'<span class="kernel env-(\w+)"><b>([^<]+)</b>', bar) == [
        ("guest", "6.1"), ("guest", "6.12"), ("host", "6.18")]
    assert '6.1<br><small class="env">guest (qemu-tcg)</small></th>' in page


def test_families_are_collapsible_with_a_summary(tmp_path, with_same_everywhere):
    _, page = matrix_files(tmp_path, with_same_everywhere)
    summaries = parse_page(page).summaries
    assert "multishot: 1 variants, 1 differ (1 pass, 1 fail, 1 skip over all kernels)" \
        in summaries
    assert any(summary.startswith("cancel: 2 variants, 1 differ") for summary in summaries)
    assert page.count('<details class="family">') == 2


def test_behaviour_metrics_that_differ_are_listed(tmp_path, make_report):
    ratio_id, flag_id = DEFAULT_ID, "cancel/fd-all[none]"
    metrics_61 = {ratio_id: {"recv_vs_oneshot_ratio": 1.0, "latency_us": 10},
                  flag_id: {"cq_overflow": False}}
    metrics_612 = {ratio_id: {"recv_vs_oneshot_ratio": 1.1, "latency_us": 99},
                   flag_id: {"cq_overflow": True}}
    metrics_618 = {ratio_id: {"recv_vs_oneshot_ratio": 2.0, "latency_us": 10},
                   flag_id: {"cq_overflow": False}}
    reports = [make_report(release, {ratio_id: "pass", flag_id: "pass"}, metrics=metrics)
               for release, metrics in (("6.1", metrics_61), ("6.12", metrics_612),
                                        ("6.18", metrics_618))]
    matrix = build_matrix([load_report(path) for path in reports])
    # A ratio beyond the noise and a flag count; timings and counts (latency_us) do not.
    assert [(row.result_id, row.metric, row.values) for row in matrix.metrics] == [
        (ratio_id, "recv_vs_oneshot_ratio", [1.0, 1.1, 2.0]),
        (flag_id, "cq_overflow", [False, True, False])]
    markdown, _ = matrix_files(tmp_path, reports)
    assert f"| `{flag_id}` | `cq_overflow` | false | true | false |" in markdown
    assert not matrix.differing.rows


def test_same_inputs_give_byte_identical_pages(tmp_path, with_same_everywhere):
    first = matrix_files(tmp_path, with_same_everywhere)
    assert matrix_files(tmp_path, with_same_everywhere) == first


CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
COMMITTED = report_paths(TOOLS_DIR.parent / "reports")
needs_chromium = pytest.mark.skipif(not Path(CHROMIUM).exists(),
                                    reason="chromium missing (apt-get install chromium)")


def chromium(*argv):
    # Root has no user namespace sandbox here; the page is our own file, with no network.
    done = subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu",
                           "--hide-scrollbars", *argv], capture_output=True, timeout=180)
    assert done.returncode == 0, done.stderr.decode(errors="replace")[-2000:]
    return done.stdout.decode()


@pytest.fixture(scope="module")
def committed_page(tmp_path_factory):
    if not COMMITTED:
        pytest.skip("no committed reports")
    out = tmp_path_factory.mktemp("matrix")
    run = run_cli("matrix-report", *COMMITTED, "--out-dir", out)
    assert run.status == 0, run.stderr
    return out / "matrix.html", [load_report(path) for path in COMMITTED]


@needs_chromium
def test_chromium_renders_a_screenshot_of_the_page(committed_page, tmp_path):
    from matplotlib.image import imread

    page, _ = committed_page
    shot = tmp_path / "matrix.png"
    chromium("--window-size=1400,1000", f"--screenshot={shot}", page.as_uri())
    pixels = imread(shot)
    assert pixels.shape[:2] == (1000, 1400)
    # Not a blank page: the bar, the table and the verdict colours give many distinct colours.
    colours = {tuple(pixel) for row in pixels[::10] for pixel in row[::10]}
    assert len(colours) > 20
    assert pixels.std() > 0.05


@needs_chromium
def test_chromium_dom_lists_the_known_differing_ids_first(committed_page):
    page, reports = committed_page
    dom = parse_page(chromium("--dump-dom", page.as_uri()))
    expected = differing_ids(reports)
    assert expected, "the committed reports should differ somewhere"
    assert set(dom.rows["differences"]) >= expected
    verdict_rows = dom.rows["differences"][:len(expected)]
    assert set(verdict_rows) == expected and len(verdict_rows) == len(expected)
    assert not dom.hidden


@needs_chromium
def test_chromium_filter_from_the_url_hides_other_rows(committed_page):
    page, reports = committed_page
    word = "cancel/"
    dom = parse_page(chromium("--dump-dom", page.as_uri() + "#filter=" + word))
    every = dom.rows["differences"] + dom.rows["everything"]
    assert any(word in row for row in every)
    assert dom.hidden == {row for row in every if word not in row}
