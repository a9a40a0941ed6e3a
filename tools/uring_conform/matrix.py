"""Compatibility matrix: scenarios and capabilities (rows) x kernels (columns).

Both renderings open with what differs between the kernels: the ids whose verdict is not the
same on every kernel (verdicts and one-line reasons inline), then behaviour metrics that differ
(the rule compare uses), then everything, grouped by family. MATRIX.md gives reasons as
footnotes in the full tables; matrix.html has a sticky bar with the kernels (guest or host) and
a filter box (plain JS, no network), families as collapsible <details>, reasons on hover, and
plots. Both are pure functions of the reports: no clock, no host names, stable ordering, so
the committed files change only when the reports do.
"""

import base64
import html
from dataclasses import dataclass, field
from pathlib import Path

from uring_conform.compare import CAPABILITY_GROUPS, DEFAULT_NOISE, GROUP_TITLES, metric_changed
from uring_conform.errors import InputError
from uring_conform.report import VERDICTS, kernel_sort_key

NOT_RUN = "—"
REASON_CHARS = 140  # an inline reason is one line of at most this many characters
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
class MetricRow:
    result_id: str
    metric: str
    values: list            # per column: the metric's value, or None when not measured


@dataclass
class Matrix:
    columns: list           # kernel labels
    environments: list      # per column: "host" or "guest (<run.environment>)"
    reports: list           # Report per column
    runs: Section
    scenarios: Section
    families: list          # Sections of scenario rows, one per family, in scenario order
    differing: Section      # scenario rows whose verdict is not the same on every kernel
    metrics: list           # MetricRows: behaviour metrics that differ between kernels
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


def environment_label(report):
    """run.environment says where the harness ran: the host, or a guest such as qemu-tcg."""
    environment = report.run.get("environment") or "host"
    return "host" if environment == "host" else f"guest ({environment})"


def one_line(text, limit=REASON_CHARS):
    line = " ".join(str(text).split())
    return line if len(line) <= limit else line[:limit - 1].rstrip() + "…"


def _differs(results):
    return len({result and result["verdict"] for result in results}) > 1


def _metric_rows(result_id, results, noise=DEFAULT_NOISE):
    """Metrics of one id whose value on some kernel differs from the first kernel that
    measured it, by compare's rule (booleans and strings always, *_ratio beyond the noise)."""
    names = sorted({name for result in results if result for name in result["metrics"]})
    rows = []
    for name in names:
        values = [result["metrics"].get(name) if result else None for result in results]
        measured = [value for value in values if value is not None]
        if any(metric_changed(name, measured[0], value, noise) for value in measured[1:]):
            rows.append(MetricRow(result_id, name, values))
    return rows


def build_matrix(reports):
    if not reports:
        raise InputError("matrix-report", "no reports to tabulate")
    reports = sorted(reports, key=lambda report: (kernel_sort_key(report.release), report.path))
    by_id = [report.results_by_id() for report in reports]
    scenarios, differing = Section("Scenarios"), Section("Verdicts that differ")
    families, verdicts, metrics = {}, [], []
    for result_id in scenario_order(reports):
        results = [results_of.get(result_id) for results_of in by_id]
        row = Row(result_id, [_verdict_cell(result) for result in results])
        scenarios.rows.append(row)
        family = next(result["family"] for result in results if result)
        families.setdefault(family, Section(family)).rows.append(row)
        if _differs(results):
            differing.rows.append(row)
        metrics += _metric_rows(result_id, results)
        verdicts.append([result and result["verdict"] for result in results])
    capabilities = []
    for group in CAPABILITY_GROUPS:
        section = Section(GROUP_TITLES[group].capitalize())
        for name in _capability_names(reports, group):
            section.rows.append(
                Row(name, [_capability_cell(report.probe, group, name) for report in reports]))
        capabilities.append(section)
    return Matrix(column_labels(reports), [environment_label(report) for report in reports],
                  reports, _runs_section(reports), scenarios, list(families.values()), differing,
                  metrics, capabilities, verdicts)


def metric_text(value):
    if value is None:
        return NOT_RUN
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


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


def _md_headings(matrix):
    return [f"{column}, {environment}"
            for column, environment in zip(matrix.columns, matrix.environments)]


def _md_table(section, columns, footnotes, label_heading, code_labels=False):
    lines = [f"| {label_heading} | " + " | ".join(map(_md_escape, columns)) + " |",
             "|---|" + "---|" * len(columns)]
    for row in section.rows:
        label = f"`{row.label}`" if code_labels else _md_escape(row.label)
        cells = [_md_escape(cell.text) + footnotes.mark(cell.note if cell.css != "absent" else "")
                 for cell in row.cells]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return lines


def _inline_verdict(cell):
    """A verdict with its reason on the same line: what the differences tables show."""
    if cell.css == "absent":
        return NOT_RUN
    return f"{cell.text}: {one_line(cell.note)}" if cell.note else cell.text


def _md_differences(matrix):
    headings = _md_headings(matrix)
    lines = ["## What differs", "",
             f"### Verdicts that differ ({len(matrix.differing.rows)} of "
             f"{len(matrix.scenarios.rows)} scenario variants)", ""]
    if matrix.differing.rows:
        lines += [f"| scenario | " + " | ".join(map(_md_escape, headings)) + " |",
                  "|---|" + "---|" * len(headings)]
        for row in matrix.differing.rows:
            lines.append(f"| `{row.label}` | " + " | ".join(
                _md_escape(_inline_verdict(cell)) for cell in row.cells) + " |")
    else:
        lines.append("Every scenario variant has the same verdict on every kernel.")
    lines += ["", f"### Behaviour metrics that differ ({len(matrix.metrics)})", "",
              "Booleans and strings that differ, and `*_ratio` numbers that moved by more than "
              f"{DEFAULT_NOISE:.0%} (as `compare` counts them); other numbers are timings and "
              "counts that vary from run to run.", ""]
    if matrix.metrics:
        lines += [f"| scenario | metric | " + " | ".join(map(_md_escape, headings)) + " |",
                  "|---|---|" + "---|" * len(headings)]
        for row in matrix.metrics:
            lines.append(f"| `{row.result_id}` | `{row.metric}` | " + " | ".join(
                _md_escape(metric_text(value)) for value in row.values) + " |")
    else:
        lines.append("(none)")
    return lines + [""]


def _family_summary(section):
    counts = {}
    for row in section.rows:
        for cell in row.cells:
            counts[cell.css] = counts.get(cell.css, 0) + 1
    differ = sum(1 for row in section.rows if len({cell.css for cell in row.cells}) > 1)
    told = ", ".join(f"{counts[verdict]} {verdict}" for verdict in VERDICTS if verdict in counts)
    return f"{len(section.rows)} variants, {differ} differ ({told} over all kernels)"


def render_markdown(matrix):
    footnotes = Footnotes()
    headings = _md_headings(matrix)
    lines = ["# uring-conform compatibility matrix", "",
             "Generated by `uring_conform matrix-report` from the reports under **Runs**; "
             "do not edit by hand. Kernels: " + ", ".join(
                 f"**{_md_escape(column)}** {environment}"
                 for column, environment in zip(matrix.columns, matrix.environments)) + ". "
             "First what differs between them, then every scenario variant by family "
             f"({NOT_RUN} = no result; the reason for any verdict but pass is a footnote), then "
             f"the probed capabilities. [{HTML_NAME}]({HTML_NAME}) has the same with a filter "
             "box, reasons on hover, and plots.", ""]
    lines += _md_differences(matrix)
    lines += ["## Everything", "", "### Runs", ""]
    lines += _md_table(matrix.runs, headings, Footnotes(), "")
    lines += ["", "### Scenarios", ""]
    for section in matrix.families:
        lines += [f"#### {section.title}: {_family_summary(section)}", ""]
        lines += _md_table(section, headings, footnotes, "scenario", code_labels=True)
        lines.append("")
    if not matrix.families:
        lines += ["(no scenario results in these reports)", ""]
    lines += ["### Capabilities (probe)", ""]
    for section in matrix.capabilities:
        lines += [f"#### {section.title}", ""]
        if section.rows:
            lines += _md_table(section, headings, footnotes, section.title.lower(),
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
body { font-family: sans-serif; margin: 0 1.5em 1.5em; color: #1a1a1a; }
#bar { position: sticky; top: 0; z-index: 3; background: #fff; border-bottom: 2px solid #90a4ae;
       padding: 0.4em 0; display: flex; flex-wrap: wrap; gap: 0.4em 1em; align-items: center; }
#bar h1 { font-size: 1.1em; margin: 0; }
.kernel { border: 1px solid #90a4ae; border-radius: 3px; padding: 0.1em 0.4em; font-size: 0.85em; }
.kernel b { font-family: monospace; }
.env { color: #455a64; }
.env-host { background: #e3f2fd; } .env-guest { background: #fff8e1; }
#filter { font-size: 0.95em; padding: 0.2em 0.4em; min-width: 18em; }
#filter-count { color: #455a64; font-size: 0.85em; }
table { border-collapse: collapse; margin-bottom: 1.2em; font-size: 0.85em; }
th, td { border: 1px solid #cfd8dc; padding: 0.2em 0.6em; text-align: center; }
th { background: #eceff1; }
thead th { position: sticky; top: var(--bar-height, 3.2em); z-index: 2; white-space: nowrap; }
th.label, td.label { text-align: left; font-family: monospace; }
td[title] { cursor: help; }
td.reason { text-align: left; max-width: 28em; }
td.reason small { display: block; color: #37474f; }
.pass, .yes { background: #c8e6c9; } .fail { background: #ef9a9a; } .skip { background: #eceff1; }
.hang { background: #ce93d8; } .crash { background: #b71c1c; color: white; }
.crash small { color: white; }
.error { background: #ffcc80; } .no { background: #ffe0b2; } .absent { color: #90a4ae; }
details { margin: 0.3em 0; } summary { cursor: pointer; padding: 0.15em 0; }
summary b { font-family: monospace; }
.hidden { display: none; }
img { max-width: 100%; display: block; margin-bottom: 1.5em; }
"""

# Plain JS, no network: the filter hides rows whose id (or other text) lacks every word typed,
# opens families with matches and hides those without; #filter=TEXT in the URL pre-fills it.
HTML_SCRIPT = """
(function () {
  var box = document.getElementById('filter'), count = document.getElementById('filter-count');
  var bar = document.getElementById('bar');
  function fitBar() {
    document.documentElement.style.setProperty('--bar-height', bar.offsetHeight + 'px');
  }
  function apply() {
    var words = box.value.toLowerCase().split(/\\s+/).filter(Boolean), shown = 0, total = 0;
    document.querySelectorAll('tr[data-id]').forEach(function (row) {
      var text = row.getAttribute('data-id').toLowerCase() + ' ' + row.textContent.toLowerCase();
      var match = words.every(function (word) { return text.indexOf(word) >= 0; });
      row.classList.toggle('hidden', !match);
      total += 1; if (match) shown += 1;
    });
    document.querySelectorAll('details.family').forEach(function (family) {
      var any = family.querySelector('tr[data-id]:not(.hidden)') !== null;
      family.classList.toggle('hidden', words.length > 0 && !any);
      if (words.length > 0) family.open = any;
    });
    count.textContent = words.length ? shown + ' of ' + total + ' rows match' : '';
  }
  box.addEventListener('input', apply);
  window.addEventListener('resize', fitBar);
  var hash = decodeURIComponent(location.hash.replace(/^#/, ''));
  if (hash.indexOf('filter=') === 0) box.value = hash.slice(7);
  fitBar();
  apply();
})();
"""


def _html_head_row(matrix, *labels):
    heads = "".join(f'<th class="label">{html.escape(label)}</th>' for label in labels)
    for column, environment in zip(matrix.columns, matrix.environments):
        heads += (f"<th>{html.escape(column)}<br><small class=\"env\">"
                  f"{html.escape(environment)}</small></th>")
    return f"<thead><tr>{heads}</tr></thead>"


def _html_cell(cell, inline_reason=False):
    title = f' title="{html.escape(cell.note, quote=True)}"' if cell.note else ""
    if inline_reason and cell.note and cell.css != "absent":
        return (f'<td class="{cell.css} reason"{title}><b>{html.escape(cell.text)}</b>'
                f"<small>{html.escape(one_line(cell.note))}</small></td>")
    return f'<td class="{cell.css}"{title}>{html.escape(cell.text)}</td>'


def _html_table(matrix, section, label_heading, ids=False, inline_reason=False):
    out = [f"<table>{_html_head_row(matrix, label_heading)}<tbody>"]
    for row in section.rows:
        data = f' data-id="{html.escape(row.label, quote=True)}"' if ids else ""
        cells = "".join(_html_cell(cell, inline_reason) for cell in row.cells)
        out.append(f'<tr{data}><td class="label">{html.escape(row.label)}</td>{cells}</tr>')
    out.append("</tbody></table>")
    return "\n".join(out)


def _html_metrics(matrix):
    out = [f"<table>{_html_head_row(matrix, 'scenario', 'metric')}<tbody>"]
    for row in matrix.metrics:
        cells = "".join(f"<td>{html.escape(metric_text(value))}</td>" for value in row.values)
        out.append(f'<tr data-id="{html.escape(row.result_id, quote=True)}">'
                   f'<td class="label">{html.escape(row.result_id)}</td>'
                   f'<td class="label">{html.escape(row.metric)}</td>{cells}</tr>')
    out.append("</tbody></table>")
    return "\n".join(out)


def _html_bar(matrix):
    kernels = "".join(
        f'<span class="kernel env-{environment.split()[0]}"><b>{html.escape(column)}</b> '
        f'<span class="env">{html.escape(environment)}</span></span>'
        for column, environment in zip(matrix.columns, matrix.environments))
    return ('<div id="bar"><h1>uring-conform matrix</h1>' + kernels +
            '<input id="filter" type="search" placeholder="filter: id, verdict or reason words"'
            ' aria-label="filter rows"><span id="filter-count"></span></div>')


def render_html(matrix, heatmap_png, bars_png):
    differing, scenarios = len(matrix.differing.rows), len(matrix.scenarios.rows)
    parts = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
             '<meta name="viewport" content="width=device-width, initial-scale=1">',
             "<title>uring-conform compatibility matrix</title>",
             f"<style>{HTML_STYLE}</style></head><body>", _html_bar(matrix),
             "<p>Generated by <code>uring_conform matrix-report</code>; do not edit by hand. "
             "What differs between the kernels comes first, then everything by family. Hover a "
             f"cell for the reason behind any verdict but pass ({NOT_RUN} = no result).</p>",
             '<section id="differences"><h2>What differs</h2>',
             f"<h3>Verdicts that differ ({differing} of {scenarios} scenario variants)</h3>",
             _html_table(matrix, matrix.differing, "scenario", ids=True, inline_reason=True)
             if differing else "<p>Every scenario variant has the same verdict on every "
                               "kernel.</p>",
             f"<h3>Behaviour metrics that differ ({len(matrix.metrics)})</h3>",
             "<p>Booleans and strings that differ, and <code>*_ratio</code> numbers that moved "
             f"by more than {DEFAULT_NOISE:.0%} (as <code>compare</code> counts them).</p>",
             _html_metrics(matrix) if matrix.metrics else "<p>(none)</p>",
             "</section>",
             '<section id="everything"><h2>Everything</h2>',
             "<h3>Runs</h3>", _html_table(matrix, matrix.runs, ""),
             "<h3>Scenarios by family</h3>"]
    for section in matrix.families:
        parts.append(f'<details class="family"><summary><b>{html.escape(section.title)}</b>: '
                     f"{html.escape(_family_summary(section))}</summary>")
        parts.append(_html_table(matrix, section, "scenario", ids=True))
        parts.append("</details>")
    if not matrix.families:
        parts.append("<p>(no scenario results in these reports)</p>")
    parts.append("<h3>Capabilities (probe)</h3>")
    for section in matrix.capabilities:
        parts.append(f'<details class="capabilities"><summary>{html.escape(section.title)} '
                     f"({len(section.rows)})</summary>")
        parts.append(_html_table(matrix, section, section.title.lower())
                     if section.rows else "<p>(none reported)</p>")
        parts.append("</details>")
    parts += ['<details class="plots"><summary>Plots</summary>',
              _png_tag(bars_png, "Verdicts per kernel"),
              _png_tag(heatmap_png, "Verdict per scenario variant and kernel"),
              "</details>", "</section>",
              f"<script>{HTML_SCRIPT}</script>", "</body></html>"]
    return "\n".join(parts) + "\n"


def _png_tag(png, alt):
    encoded = base64.b64encode(png).decode("ascii")
    return f'<img alt="{html.escape(alt, quote=True)}" src="data:image/png;base64,{encoded}">'


def render(reports):
    """(markdown, html) for a list of loaded reports."""
    from uring_conform import plots

    matrix = build_matrix(reports)
    labels = [f"{column}\n{environment}"
              for column, environment in zip(matrix.columns, matrix.environments)]
    heatmap = plots.verdict_heatmap([row.label for row in matrix.scenarios.rows], labels,
                                    matrix.scenario_verdicts)
    bars = plots.summary_bars(labels, [report.data["summary"] for report in matrix.reports])
    return render_markdown(matrix), render_html(matrix, heatmap, bars)
