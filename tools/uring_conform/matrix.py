"""Compatibility matrix: scenarios and capabilities (rows) x kernels (columns).

Renders MATRIX.md (reasons as footnotes) and matrix.html (reasons on hover, plots inline).
Both are pure functions of the reports: no clock, no host names, stable ordering, so the
committed files change only when the reports do.
"""

import base64
import html
from dataclasses import dataclass, field
from pathlib import Path

from uring_conform.compare import CAPABILITY_GROUPS, GROUP_TITLES
from uring_conform.errors import InputError
from uring_conform.report import VERDICTS, kernel_sort_key

NOT_RUN = "—"
MD_NAME, HTML_NAME = "MATRIX.md", "matrix.html"


@dataclass(frozen=True)
class Cell:
    text: str
    css: str          # class name in the HTML
    note: str = ""    # why (skip/fail reason): footnote in MD, hover in HTML


@dataclass
class Row:
    label: str
    cells: list


@dataclass
class Section:
    title: str
    rows: list = field(default_factory=list)


@dataclass
class Matrix:
    columns: list           # kernel labels
    reports: list           # Report per column
    runs: Section
    scenarios: Section
    capabilities: list      # Sections, one per capability group
    scenario_verdicts: list  # [row][column] verdict or None, for the heatmap


def column_labels(reports):
    """Kernel release per column; a release seen twice is told apart by the file name."""
    releases = [report.release for report in reports]
    return [release if releases.count(release) == 1 else f"{release} ({Path(report.path).stem})"
            for release, report in zip(releases, reports)]


def scenario_order(reports):
    """Ids grouped by family, in the harness's order: the report with the most results sets
    the order, ids only other reports have follow within their family."""
    families = {}
    for report in sorted(reports, key=lambda report: -len(report.results)):
        for result in report.results:
            families.setdefault(result["family"], {}).setdefault(result["id"], None)
    return [result_id for ids in families.values() for result_id in ids]


def _verdict_cell(result):
    if result is None:
        return Cell(NOT_RUN, "absent", "no result for this scenario in this report")
    verdict = result["verdict"]
    note = "" if verdict == "pass" else result["reason"]
    return Cell(verdict, verdict, note)


def _yes_no(value):
    if value is None:
        return Cell(NOT_RUN, "absent", "not probed")
    return Cell("yes", "yes") if value else Cell("no", "no")


def _capability_cell(probe, group, name):
    value = probe.get(group)
    if group in ("opcodes", "features"):
        return _yes_no(name in value)
    if group == "setup_flags":
        if name not in value:
            return Cell(NOT_RUN, "absent", "not probed")
        outcome = value[name]
        return Cell(outcome, "yes" if outcome == "ok" else "no",
                    "" if outcome == "ok" else f"io_uring_setup returned -{outcome}")
    return _yes_no(value.get(name))


def _capability_names(reports, group):
    names = set()
    for report in reports:
        names.update(report.probe.get(group) or ())
    return sorted(names)


def _runs_section(reports):
    def row(label, value_of):
        return Row(label, [Cell(str(value_of(report)), "run") for report in reports])

    def ended(report):
        detail = report.run.get("ended_detail")
        return report.run["ended"] + (f" ({detail})" if detail else "")

    def counts(report):
        summary = report.data["summary"]
        return " / ".join(str(summary[verdict]) for verdict in VERDICTS)

    return Section("Runs", [
        row("kernel version", lambda report: report.data["kernel"]["version"]),
        row("machine", lambda report: report.data["kernel"]["machine"]),
        row("environment", lambda report: report.run.get("environment") or "host"),
        row("profile", lambda report: report.run["profile"]),
        row("started", lambda report: report.run["started"]),
        row("ended", ended),
        row("liburing", lambda report: report.data["liburing"]["runtime"]),
        row("uring-conform", lambda report: report.data["tool"]["version"]),
        row("/".join(VERDICTS), counts),
        row("report", lambda report: Path(report.path).name),
    ])


def build_matrix(reports):
    if not reports:
        raise InputError("matrix-report", "no reports to tabulate")
    reports = sorted(reports, key=lambda report: (kernel_sort_key(report.release), report.path))
    by_id = [report.results_by_id() for report in reports]
    scenarios = Section("Scenarios")
    verdicts = []
    for result_id in scenario_order(reports):
        results = [results_of.get(result_id) for results_of in by_id]
        scenarios.rows.append(Row(result_id, [_verdict_cell(result) for result in results]))
        verdicts.append([result and result["verdict"] for result in results])
    capabilities = []
    for group in CAPABILITY_GROUPS:
        section = Section(GROUP_TITLES[group].capitalize())
        for name in _capability_names(reports, group):
            section.rows.append(
                Row(name, [_capability_cell(report.probe, group, name) for report in reports]))
        capabilities.append(section)
    return Matrix(column_labels(reports), reports, _runs_section(reports), scenarios,
                  capabilities, verdicts)


class Footnotes:
    """Numbers each distinct note once, in order of first use."""

    def __init__(self):
        self.numbers = {}

    def mark(self, note):
        if not note:
            return ""
        number = self.numbers.setdefault(note, len(self.numbers) + 1)
        return f"[^{number}]"


def _md_escape(text):
    return str(text).replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ")


def _md_table(section, columns, footnotes, label_heading, code_labels=False):
    lines = [f"| {label_heading} | " + " | ".join(map(_md_escape, columns)) + " |",
             "|---|" + "---|" * len(columns)]
    for row in section.rows:
        label = f"`{row.label}`" if code_labels else _md_escape(row.label)
        cells = [_md_escape(cell.text) + footnotes.mark(cell.note if cell.css != "absent" else "")
                 for cell in row.cells]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return lines


def render_markdown(matrix):
    footnotes = Footnotes()
    lines = ["# uring-conform compatibility matrix", "",
             "Generated by `uring_conform matrix-report` from the reports under **Runs**; "
             "do not edit by hand. A cell is the verdict of one scenario variant on one kernel "
             f"({NOT_RUN} = no result); the reason for any verdict but pass is a footnote. "
             f"[{HTML_NAME}]({HTML_NAME}) has the same tables with reasons on hover, and plots.",
             "", "## Runs", ""]
    lines += _md_table(matrix.runs, matrix.columns, Footnotes(), "")
    lines += ["", "## Scenarios", ""]
    lines += _md_table(matrix.scenarios, matrix.columns, footnotes, "scenario", code_labels=True)
    lines += ["", "## Capabilities (probe)", ""]
    for section in matrix.capabilities:
        lines += [f"### {section.title}", ""]
        if section.rows:
            lines += _md_table(section, matrix.columns, footnotes, section.title.lower(),
                               code_labels=True)
        else:
            lines.append("(none reported)")
        lines.append("")
    if footnotes.numbers:
        lines += ["## Reasons", ""]
        lines += [f"[^{number}]: {_md_escape(note)}" for note, number in footnotes.numbers.items()]
        lines.append("")
    return "\n".join(lines).rstrip("\n") + "\n"


HTML_STYLE = """
body { font-family: sans-serif; margin: 1.5em; color: #1a1a1a; }
table { border-collapse: collapse; margin-bottom: 1.5em; font-size: 0.85em; }
th, td { border: 1px solid #cfd8dc; padding: 0.2em 0.6em; text-align: center; }
th:first-child, td:first-child { text-align: left; font-family: monospace; }
td[title] { cursor: help; text-decoration: underline dotted; }
.pass, .yes { background: #c8e6c9; } .fail { background: #ef9a9a; } .skip { background: #eceff1; }
.hang { background: #ce93d8; } .crash { background: #b71c1c; color: white; }
.error { background: #ffcc80; } .no { background: #ffe0b2; } .absent { color: #90a4ae; }
img { max-width: 100%; display: block; margin-bottom: 1.5em; }
"""


def _html_table(section, columns, label_heading):
    head = "".join(f"<th>{html.escape(column)}</th>" for column in columns)
    out = [f"<table><thead><tr><th>{html.escape(label_heading)}</th>{head}</tr></thead><tbody>"]
    for row in section.rows:
        cells = []
        for cell in row.cells:
            title = f' title="{html.escape(cell.note, quote=True)}"' if cell.note else ""
            cells.append(f'<td class="{cell.css}"{title}>{html.escape(cell.text)}</td>')
        out.append(f"<tr><td>{html.escape(row.label)}</td>{''.join(cells)}</tr>")
    out.append("</tbody></table>")
    return "\n".join(out)


def _png_tag(png, alt):
    encoded = base64.b64encode(png).decode("ascii")
    return f'<img alt="{html.escape(alt, quote=True)}" src="data:image/png;base64,{encoded}">'


def render_html(matrix, heatmap_png, bars_png):
    parts = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
             "<title>uring-conform compatibility matrix</title>",
             f"<style>{HTML_STYLE}</style></head><body>",
             "<h1>uring-conform compatibility matrix</h1>",
             "<p>Generated by <code>uring_conform matrix-report</code>; do not edit by hand. "
             "Hover a cell for the reason behind any verdict but pass "
             f"({NOT_RUN} = no result).</p>",
             "<h2>Runs</h2>", _html_table(matrix.runs, matrix.columns, ""),
             "<h2>Plots</h2>", _png_tag(bars_png, "Verdicts per kernel"),
             _png_tag(heatmap_png, "Verdict per scenario variant and kernel"),
             "<h2>Scenarios</h2>", _html_table(matrix.scenarios, matrix.columns, "scenario"),
             "<h2>Capabilities (probe)</h2>"]
    for section in matrix.capabilities:
        parts.append(f"<h3>{html.escape(section.title)}</h3>")
        parts.append(_html_table(section, matrix.columns, section.title.lower())
                     if section.rows else "<p>(none reported)</p>")
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


def render(reports):
    """(markdown, html) for a list of loaded reports."""
    from uring_conform import plots

    matrix = build_matrix(reports)
    heatmap = plots.verdict_heatmap([row.label for row in matrix.scenarios.rows],
                                    matrix.columns, matrix.scenario_verdicts)
    bars = plots.summary_bars(matrix.columns, [report.data["summary"]
                                               for report in matrix.reports])
    return render_markdown(matrix), render_html(matrix, heatmap, bars)


def default_report_paths(reports_dir):
    """reports/*.json except the schema; reports/local/ is not searched."""
    return sorted(path for path in Path(reports_dir).glob("*.json")
                  if path.name != "report.schema.json")
