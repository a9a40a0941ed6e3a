"""The matrix's plots, rendered with matplotlib's Agg backend to PNG bytes.

Figures are built with the object API (no pyplot state) and saved without the "Software"
metadata, so the same inputs and matplotlib give byte-identical PNGs.
"""

import io

import matplotlib

matplotlib.use("Agg")

from matplotlib.colors import ListedColormap  # noqa: E402  (after choosing the backend)
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.patches import Patch  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

from uring_conform.report import VERDICTS  # noqa: E402

VERDICT_COLOURS = {"pass": "#2e7d32", "fail": "#c62828", "skip": "#b0bec5", "hang": "#6a1b9a",
                   "crash": "#4e0000", "error": "#ef6c00", None: "#f5f5f5"}
HEATMAP_ORDER = VERDICTS + (None,)  # None = no result for this scenario on this kernel


def _png(figure):
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100, bbox_inches="tight",
                   metadata={"Software": None})
    return buffer.getvalue()


def verdict_heatmap(scenario_ids, kernel_labels, verdicts):
    """PNG of a scenario x kernel grid; verdicts[row][column] is a verdict or None."""
    if not scenario_ids:
        figure = Figure(figsize=(4.0, 1.0))
        figure.text(0.5, 0.5, "no scenario results in these reports", ha="center", va="center")
        return _png(figure)
    codes = [[HEATMAP_ORDER.index(verdict) for verdict in row] for row in verdicts]
    width = 3.0 + 1.1 * len(kernel_labels) + 0.055 * max(map(len, scenario_ids), default=10)
    figure = Figure(figsize=(width, 1.8 + 0.17 * len(scenario_ids)))
    axes = figure.add_subplot()
    colour_map = ListedColormap([VERDICT_COLOURS[verdict] for verdict in HEATMAP_ORDER])
    axes.imshow(codes, cmap=colour_map, vmin=-0.5, vmax=len(HEATMAP_ORDER) - 0.5,
                aspect="auto", interpolation="nearest")
    axes.set_xticks(range(len(kernel_labels)), kernel_labels, rotation=30, ha="right",
                    fontsize=8)
    axes.set_yticks(range(len(scenario_ids)), scenario_ids, fontsize=6)
    axes.set_xticks([x - 0.5 for x in range(1, len(kernel_labels))], minor=True)
    axes.set_yticks([y - 0.5 for y in range(1, len(scenario_ids))], minor=True)
    axes.grid(which="minor", color="white", linewidth=0.6)
    axes.tick_params(which="minor", length=0)
    axes.set_title("Verdict per scenario variant and kernel")
    legend = [Patch(facecolor=VERDICT_COLOURS[verdict], edgecolor="#607d8b",
                    label=verdict or "not run") for verdict in HEATMAP_ORDER]
    axes.legend(handles=legend, loc="upper left", bbox_to_anchor=(1.01, 1), fontsize=8)
    return _png(figure)


def summary_bars(kernel_labels, summaries):
    """PNG of stacked bars: how many scenarios had each verdict, per kernel."""
    figure = Figure(figsize=(2.5 + 1.2 * len(kernel_labels), 4.0))
    axes = figure.add_subplot()
    bottoms = [0] * len(kernel_labels)
    for verdict in VERDICTS:
        counts = [summary[verdict] for summary in summaries]
        axes.bar(range(len(kernel_labels)), counts, bottom=bottoms, label=verdict,
                 color=VERDICT_COLOURS[verdict], edgecolor="white", linewidth=0.5)
        bottoms = [bottom + count for bottom, count in zip(bottoms, counts)]
    axes.set_xticks(range(len(kernel_labels)), kernel_labels, rotation=30, ha="right",
                    fontsize=8)
    axes.yaxis.set_major_locator(MaxNLocator(integer=True))
    axes.set_ylabel("scenario variants")
    axes.set_title("Verdicts per kernel")
    axes.legend(loc="upper left", bbox_to_anchor=(1.01, 1), fontsize=8)
    return _png(figure)
