"""Compare two reports: what regressed, what was fixed, what the new kernel gained or lost.

Classification of one scenario id, BASE verdict -> NEW verdict:
  regression    pass -> fail/hang/crash/error (the only kind that fails the pytest session)
  fix           fail/hang/crash/error -> pass
  new-feature   skip -> pass
  new-scenario  absent in BASE
  removed       absent in NEW
  changed       any other verdict change (e.g. pass -> skip, fail -> hang)
  unchanged     same verdict
Capabilities (probe opcodes, features, setup flags, buf ring modes, probed capabilities) are
compared as sets of what is supported; a key missing from a probe counts as unsupported.
Behaviour changes are metrics of the same id whose value differs: booleans and strings
always, numbers only when the name ends in "_ratio" and the value moved by more than the
noise threshold relative to BASE (other numbers are timings and counts that vary run to run).
"""

import json
import os
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path

from uring_conform.report import BROKEN_VERDICTS

DEFAULT_NOISE = 0.25
CAPABILITY_GROUPS = ("opcodes", "features", "setup_flags", "buf_ring", "capabilities")
GROUP_TITLES = {"opcodes": "opcodes", "features": "features", "setup_flags": "setup flags",
                "buf_ring": "buf ring modes", "capabilities": "capabilities"}
REGRESSION_CHECK_MODULE = Path(__file__).with_name("regression_check.py")


@dataclass(frozen=True)
class ScenarioChange:
    id: str
    base: str  # verdict on BASE, None when BASE has no result for this id
    new: str   # verdict on NEW, None when NEW has no result for this id
    kind: str
    base_reason: str = ""
    new_reason: str = ""
    new_failures: tuple = ()

    def describe(self):
        text = f"{self.id}: {self.base or 'absent'} -> {self.new or 'absent'}"
        if self.new_reason:
            text += f": {self.new_reason}"
        elif self.base_reason and self.kind in ("fix", "new-feature"):
            text += f" (was: {self.base_reason})"
        return text

    def failure_message(self):
        """What a failing test in the pytest session says: the rule broken on NEW and evidence."""
        lines = [f"regression: {self.id} passed on BASE and is {self.new} on NEW"]
        if self.new_reason:
            lines.append(f"reason: {self.new_reason}")
        lines.extend(f"evidence: {failure}" for failure in self.new_failures)
        return "\n".join(lines)


@dataclass(frozen=True)
class BehaviourChange:
    id: str
    metric: str
    base: object
    new: object

    def describe(self):
        return f"{self.id} {self.metric}: {json.dumps(self.base)} -> {json.dumps(self.new)}"


def classify_verdicts(base, new):
    if base is None:
        return "new-scenario"
    if new is None:
        return "removed"
    if base == new:
        return "unchanged"
    if base == "pass" and new in BROKEN_VERDICTS:
        return "regression"
    if base in BROKEN_VERDICTS and new == "pass":
        return "fix"
    if base == "skip" and new == "pass":
        return "new-feature"
    return "changed"


def supported(probe, group):
    """The names a probe reports as supported in one capability group."""
    value = probe.get(group) or {}
    if group in ("opcodes", "features"):
        return set(value)
    if group == "setup_flags":
        return {name for name, outcome in value.items() if outcome == "ok"}
    return {name for name, present in value.items() if present is True}


def _is_number(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def metric_changed(name, base, new, noise):
    if base is None or new is None:
        return False  # not measured on one side: nothing to compare
    if _is_number(base) and _is_number(new):
        if not name.endswith("_ratio"):
            return False
        if base == 0:
            return new != 0
        return abs(new - base) / abs(base) > noise
    return base != new or type(base) is not type(new)


def _ordered_ids(base_results, new_results):
    ids = list(base_results)
    ids.extend(result_id for result_id in new_results if result_id not in base_results)
    return ids


@dataclass
class Comparison:
    base_run: dict
    new_run: dict
    noise: float
    scenarios: list = field(default_factory=list)
    gained: dict = field(default_factory=dict)
    lost: dict = field(default_factory=dict)
    behaviour_changes: list = field(default_factory=list)

    def of_kind(self, kind):
        return [change for change in self.scenarios if change.kind == kind]

    def scenario(self, scenario_id):
        return next(change for change in self.scenarios if change.id == scenario_id)

    @property
    def regressions(self):
        return self.of_kind("regression")

    def to_json(self):
        return {
            "base": self.base_run,
            "new": self.new_run,
            "noise": self.noise,
            "regressions": [asdict(change) for change in self.of_kind("regression")],
            "fixes": [asdict(change) for change in self.of_kind("fix")],
            "new_features": {
                **{group: self.gained[group] for group in CAPABILITY_GROUPS},
                "scenarios_skip_to_pass": [change.id for change in self.of_kind("new-feature")],
                "scenarios_new": [{"id": change.id, "verdict": change.new}
                                  for change in self.of_kind("new-scenario")],
            },
            "lost_capabilities": {group: self.lost[group] for group in CAPABILITY_GROUPS},
            "behaviour_changes": [asdict(change) for change in self.behaviour_changes],
            "other_changes": [asdict(change) for change in self.of_kind("changed")],
            "removed_scenarios": [{"id": change.id, "verdict": change.base}
                                  for change in self.of_kind("removed")],
            "scenarios": [{"id": change.id, "base": change.base, "new": change.new,
                           "kind": change.kind} for change in self.scenarios],
        }


def _run_facts(report):
    run = report.run
    facts = {"file": report.path, "kernel": report.release, "profile": run["profile"],
             "filter": run["filter"], "ended": run["ended"], "summary": report.data["summary"]}
    if run.get("ended_detail"):
        facts["ended_detail"] = run["ended_detail"]
    return facts


def compare(base, new, noise=DEFAULT_NOISE):
    """Classify every scenario id of two loaded reports and diff their probes and metrics."""
    base_results, new_results = base.results_by_id(), new.results_by_id()
    comparison = Comparison(_run_facts(base), _run_facts(new), noise)
    for result_id in _ordered_ids(base_results, new_results):
        before, after = base_results.get(result_id), new_results.get(result_id)
        comparison.scenarios.append(ScenarioChange(
            id=result_id,
            base=before and before["verdict"],
            new=after and after["verdict"],
            kind=classify_verdicts(before and before["verdict"], after and after["verdict"]),
            base_reason=(before or {}).get("reason", ""),
            new_reason=(after or {}).get("reason", ""),
            new_failures=tuple((after or {}).get("evidence", {}).get("failures", ())),
        ))
        if before and after:
            for metric in sorted(set(before["metrics"]) & set(after["metrics"])):
                old_value, new_value = before["metrics"][metric], after["metrics"][metric]
                if metric_changed(metric, old_value, new_value, noise):
                    comparison.behaviour_changes.append(
                        BehaviourChange(result_id, metric, old_value, new_value))
    for group in CAPABILITY_GROUPS:
        had, has = supported(base.probe, group), supported(new.probe, group)
        comparison.gained[group] = sorted(has - had)
        comparison.lost[group] = sorted(had - has)
    return comparison


def _section(title, lines):
    out = [f"{title} ({len(lines)}):" if lines else f"{title}: none"]
    out.extend(f"  {line}" for line in lines)
    return out


def _capability_lines(by_group):
    return [f"{GROUP_TITLES[group]}: {', '.join(names)}"
            for group, names in by_group.items() if names]


def _run_line(label, facts):
    summary = facts["summary"]
    counts = ", ".join(f"{verdict} {summary[verdict]}" for verdict in
                       ("pass", "fail", "skip", "hang", "crash", "error"))
    ended = facts["ended"] + (f" ({facts['ended_detail']})" if facts.get("ended_detail") else "")
    return f"{label}: {facts['kernel']}  [{facts['file']}]  profile {facts['profile']}, " \
           f"run ended {ended}; {counts}"


def summary_text(comparison):
    """The human-readable account printed after the pytest session."""
    lines = ["uring-conform compare", _run_line("  BASE", comparison.base_run),
             _run_line("  NEW ", comparison.new_run)]
    if (comparison.base_run["profile"], comparison.base_run["filter"]) != \
            (comparison.new_run["profile"], comparison.new_run["filter"]):
        lines.append("  note: the runs used different profiles or filters, so scenarios present "
                     "in only one report may be a selection difference, not a kernel one")
    if comparison.new_run["ended"] != "complete":
        lines.append(f"  note: the NEW run did not complete ({comparison.new_run['ended']}); "
                     "scenarios it did not reach are listed as removed")
    lines += _section("Regressions", [c.describe() for c in comparison.of_kind("regression")])
    lines += _section("Fixes", [c.describe() for c in comparison.of_kind("fix")])
    features = _capability_lines(comparison.gained)
    features += [f"scenario skip -> pass: {c.id}" for c in comparison.of_kind("new-feature")]
    features += [f"scenario new in NEW: {c.id} ({c.new})"
                 for c in comparison.of_kind("new-scenario")]
    lines += _section("New features", features)
    lines += _section("Lost capabilities", _capability_lines(comparison.lost))
    lines += _section("Behaviour changes", [c.describe() for c in comparison.behaviour_changes])
    lines += _section("Other verdict changes",
                      [c.describe() for c in comparison.of_kind("changed")])
    lines += _section("Not in NEW",
                      [f"{c.id} (was {c.base})" for c in comparison.of_kind("removed")])
    count = len(comparison.regressions)
    lines.append(f"Result: {count} regression{'s' if count != 1 else ''}")
    return "\n".join(lines)


class RegressionPlugin:
    """Hands the classified scenarios to regression_check.py, one test per scenario id."""

    def __init__(self, changes):
        self.changes = changes

    def pytest_generate_tests(self, metafunc):
        if "scenario_change" in metafunc.fixturenames:
            metafunc.parametrize("scenario_change", self.changes,
                                 ids=[change.id for change in self.changes])


def run_pytest_session(comparison, keyword=None, quiet=False):
    """Run regression_check.py under pytest; returns pytest's exit code.

    The session reads no ini file or conftest from the tree, autoloads no third-party plugin,
    and writes neither a cache nor bytecode, so comparing leaves the working tree untouched.
    """
    import pytest

    args = [str(REGRESSION_CHECK_MODULE), "-c", os.devnull,
            "--rootdir", str(REGRESSION_CHECK_MODULE.parent),
            "-p", "no:cacheprovider", "--noconftest", "-q" if quiet else "-v", "-rf"]
    if keyword:
        args += ["-k", keyword]
    saved_bytecode, saved_autoload = sys.dont_write_bytecode, \
        os.environ.get("PYTEST_DISABLE_PLUGIN_AUTOLOAD")
    sys.dont_write_bytecode = True
    os.environ["PYTEST_DISABLE_PLUGIN_AUTOLOAD"] = "1"
    try:
        return int(pytest.main(args, plugins=[RegressionPlugin(comparison.scenarios)]))
    finally:
        sys.dont_write_bytecode = saved_bytecode
        if saved_autoload is None:
            os.environ.pop("PYTEST_DISABLE_PLUGIN_AUTOLOAD", None)
        else:
            os.environ["PYTEST_DISABLE_PLUGIN_AUTOLOAD"] = saved_autoload
