"""Compare two reports: what got worse, what was fixed, what the new kernel gained or lost.

Classification of one scenario id, BASE verdict -> NEW verdict ("broken" = fail, hang,
crash or error; "absent" = the report has no result for the id):
  regression      pass -> broken                                         (gates)
  new-failure     skip -> broken (a feature that arrived broken), absent -> broken  (gates)
  known           what would gate, where NEW's expectation.status is "xfail": a known issue
  fix             broken -> pass
  not-reproduced  broken -> pass on a timing-dependent scenario: it survived metrics.rounds
                  rounds on NEW, which is evidence, not proof, that the bug is gone
  new-feature     skip -> pass, absent -> pass
  lost            pass -> skip (the kernel now refuses something it did)
  removed         absent on NEW
  changed         any other verdict change (fail -> hang, fail -> skip, absent -> skip)
  unchanged       same verdict
A NEW result whose expectation.status is "xpass" (the known issue did not happen) is listed
apart as worth attention, whatever its kind. compare exits 1 when anything gates.

Capabilities (probe opcodes, features, setup flags, buf ring modes, probed capabilities) are
compared as sets of what is supported; a key missing from a probe counts as unsupported.
Behaviour changes are metrics of the same id whose value differs: booleans and strings
always, numbers only when the name ends in "_ratio" and the value moved by more than the
noise threshold relative to BASE (other numbers are timings and counts that vary run to run).
"""

import fnmatch
import json
from dataclasses import asdict, dataclass, field

from uring_conform.report import BROKEN_VERDICTS, VERDICTS

DEFAULT_NOISE = 0.25
CAPABILITY_GROUPS = ("opcodes", "features", "setup_flags", "buf_ring", "capabilities")
GROUP_TITLES = {"opcodes": "opcodes", "features": "features", "setup_flags": "setup flags",
                "buf_ring": "buf ring modes", "capabilities": "capabilities"}
GATING_KINDS = ("regression", "new-failure")
# Evidence lines shown under a gating row; the report has the rest.
MAX_EVIDENCE_LINES = 3


@dataclass(frozen=True)
class ScenarioChange:
    id: str
    base: str  # verdict on BASE, None when BASE has no result for this id
    new: str   # verdict on NEW, None when NEW has no result for this id
    kind: str
    base_reason: str = ""
    new_reason: str = ""
    new_failures: tuple = ()
    timing_dependent: bool = False
    rounds: int = None        # NEW's metrics.rounds, for a timing-dependent scenario
    expectation: dict = None  # NEW's expectation (known-issues entry), if one matched

    @property
    def gates(self):
        return self.kind in GATING_KINDS

    @property
    def xpass(self):
        return (self.expectation or {}).get("status") == "xpass"

    def _verdicts(self):
        return f"{self.base or 'absent'} -> {self.new or 'absent'}"

    def describe(self):
        """The row printed for this change in its group."""
        text = f"{self.id}: {self._verdicts()}"
        if self.kind == "not-reproduced":
            survived = f"in {self.rounds} rounds" if self.rounds else "on NEW (rounds not recorded)"
            return f"{text}: not reproduced {survived} (was: {self.base_reason})"
        if self.kind == "fix":
            return f"{text} (was: {self.base_reason})" if self.base_reason else text
        if self.kind == "removed":
            return f"{self.id} (was {self.base})"
        if self.new_reason:
            text += f": {self.new_reason}"
        if self.kind == "known":
            text += f" [known: {_expectation_text(self.expectation)}]"
        return text

    def evidence_lines(self):
        """Evidence for a gating row: the failures the reason does not already say."""
        lines = [failure for failure in self.new_failures if failure != self.new_reason]
        return [f"evidence: {line}" for line in lines[:MAX_EVIDENCE_LINES]]

    def describe_xpass(self):
        expected = self.expectation.get("expected", "?")
        return f"{self.id}: expected {expected}, got {self.new} " \
               f"[{_expectation_text(self.expectation)}]"


def _expectation_text(expectation):
    parts = [expectation.get("reason", "")]
    parts += [expectation[key] for key in ("link", "source") if expectation.get(key)]
    return "; ".join(part for part in parts if part)


@dataclass(frozen=True)
class BehaviourChange:
    id: str
    metric: str
    base: object
    new: object

    def describe(self):
        if _is_number(self.base) and _is_number(self.new):
            change = "from 0" if self.base == 0 else \
                f"{(self.new - self.base) / abs(self.base) * 100:+.1f} %"
            return f"{self.id} {self.metric}: {_rounded(self.base)} -> {_rounded(self.new)} " \
                   f"({change})"
        return f"{self.id} {self.metric}: {json.dumps(self.base)} -> {json.dumps(self.new)}"


def _rounded(number):
    return f"{number:.3g}"


def _is_number(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _timing_dependent(*results):
    return any(result and result.get("timing_dependent") is True for result in results)


def classify(before, after):
    """The kind of change from one BASE result to one NEW result (either may be None)."""
    base = before and before["verdict"]
    new = after and after["verdict"]
    if new is None:
        return "removed"
    if base == new:
        return "unchanged"
    if new in BROKEN_VERDICTS and base in ("pass", "skip", None):
        if (after.get("expectation") or {}).get("status") == "xfail":
            return "known"
        return "regression" if base == "pass" else "new-failure"
    if base in BROKEN_VERDICTS and new == "pass":
        return "not-reproduced" if _timing_dependent(before, after) else "fix"
    if new == "pass" and base in ("skip", None):
        return "new-feature"
    if base == "pass" and new == "skip":
        return "lost"
    return "changed"


def supported(probe, group):
    """The names a probe reports as supported in one capability group."""
    value = probe.get(group) or {}
    if group in ("opcodes", "features"):
        return set(value)
    if group == "setup_flags":
        return {name for name, outcome in value.items() if outcome == "ok"}
    return {name for name, present in value.items() if present is True}


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


def id_matcher(glob):
    """Match ids as the harness's --filter does: brackets are literal, * and ? are wildcards."""
    if glob is None:
        return lambda result_id: True
    pattern = glob.replace("[", "\0").replace("]", "[]]").replace("\0", "[[]")
    return lambda result_id: fnmatch.fnmatchcase(result_id, pattern)


def _ordered_ids(base_results, new_results):
    ids = list(base_results)
    ids.extend(result_id for result_id in new_results if result_id not in base_results)
    return ids


@dataclass
class Comparison:
    base_run: dict
    new_run: dict
    noise: float
    id_filter: str = None
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

    @property
    def gating(self):
        """Every change that makes compare exit 1."""
        return [change for change in self.scenarios if change.gates]

    @property
    def xpasses(self):
        return [change for change in self.scenarios if change.xpass]

    def to_json(self):
        def rows(kind):
            return [asdict(change) for change in self.of_kind(kind)]
        return {
            "base": self.base_run,
            "new": self.new_run,
            "noise": self.noise,
            "filter": self.id_filter,
            "gating": bool(self.gating),
            "regressions": rows("regression"),
            "new_failures": rows("new-failure"),
            "xpass": [asdict(change) for change in self.xpasses],
            "known_issues": rows("known"),
            "fixes": rows("fix"),
            "not_reproduced": rows("not-reproduced"),
            "new_features": {
                **{group: self.gained[group] for group in CAPABILITY_GROUPS},
                "scenarios": [{"id": change.id, "base": change.base}
                              for change in self.of_kind("new-feature")],
            },
            "lost": {
                **{group: self.lost[group] for group in CAPABILITY_GROUPS},
                "scenarios": [{"id": change.id, "reason": change.new_reason}
                              for change in self.of_kind("lost")],
            },
            "behaviour_changes": [asdict(change) for change in self.behaviour_changes],
            "other_changes": rows("changed"),
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


def compare(base, new, noise=DEFAULT_NOISE, id_filter=None):
    """Classify every scenario id of two loaded reports and diff their probes and metrics.

    id_filter: a --filter style glob; only matching ids are compared.
    """
    base_results, new_results = base.results_by_id(), new.results_by_id()
    comparison = Comparison(_run_facts(base), _run_facts(new), noise, id_filter)
    selected = id_matcher(id_filter)
    for result_id in filter(selected, _ordered_ids(base_results, new_results)):
        before, after = base_results.get(result_id), new_results.get(result_id)
        comparison.scenarios.append(ScenarioChange(
            id=result_id,
            base=before and before["verdict"],
            new=after and after["verdict"],
            kind=classify(before, after),
            base_reason=(before or {}).get("reason", ""),
            new_reason=(after or {}).get("reason", ""),
            new_failures=tuple((after or {}).get("evidence", {}).get("failures", ())),
            timing_dependent=_timing_dependent(before, after),
            rounds=(after or {}).get("metrics", {}).get("rounds"),
            expectation=(after or {}).get("expectation"),
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


def _capability_lines(by_group):
    return [f"{GROUP_TITLES[group]}: {', '.join(names)}"
            for group, names in by_group.items() if names]


def _run_line(label, facts):
    summary = facts["summary"]
    counts = ", ".join(f"{verdict} {summary[verdict]}" for verdict in VERDICTS)
    ended = facts["ended"] + (f" ({facts['ended_detail']})" if facts.get("ended_detail") else "")
    return f"{label}: {facts['kernel']}  [{facts['file']}]  profile {facts['profile']}, " \
           f"run ended {ended}; {counts}"


def _gating_rows(changes):
    """One row per change, its evidence on indented lines below it."""
    return ["".join([change.describe()] + [f"\n    {line}" for line in change.evidence_lines()])
            for change in changes]


@dataclass(frozen=True)
class Section:
    title: str
    hint: str
    rows: list
    count: int = None  # what the rows stand for, when a row lists several names

    def heading(self):
        count = len(self.rows) if self.count is None else self.count
        return f"{self.title} ({count}): {self.hint}" if self.hint else f"{self.title} ({count}):"


def _names(by_group):
    return sum(len(names) for names in by_group.values())


def sections(comparison):
    """The groups in the order they are printed; what gates comes first."""
    of_kind = comparison.of_kind
    gained = of_kind("new-feature")
    lost = of_kind("lost")
    return [
        Section("Regressions", "pass on BASE, broken on NEW", _gating_rows(of_kind("regression"))),
        Section("New failures", "skipped or absent on BASE, broken on NEW",
                _gating_rows(of_kind("new-failure"))),
        Section("Worth attention", "a known issue did not happen (xpass)",
                [c.describe_xpass() for c in comparison.xpasses]),
        Section("Known issues", "xfail, not gating", [c.describe() for c in of_kind("known")]),
        Section("Fixes", "", [c.describe() for c in of_kind("fix")]),
        Section("Not reproduced", "timing-dependent, so not proof of a fix",
                [c.describe() for c in of_kind("not-reproduced")]),
        Section("New features", "", _capability_lines(comparison.gained)
                + [c.describe() for c in gained], _names(comparison.gained) + len(gained)),
        Section("Lost capabilities", "", _capability_lines(comparison.lost)
                + [c.describe() for c in lost], _names(comparison.lost) + len(lost)),
        Section("Behaviour changes", "metrics",
                [c.describe() for c in comparison.behaviour_changes]),
        Section("Other verdict changes", "", [c.describe() for c in of_kind("changed")]),
        Section("Not in NEW", "", [c.describe() for c in of_kind("removed")]),
    ]


def _plural(count, word, plural=None):
    return f"{count} {word if count == 1 else (plural or word + 's')}"


def summary_line(comparison):
    """One line: what gates, then the other changes that happened, then what did not change."""
    of_kind = comparison.of_kind
    regressions, new_failures = len(of_kind("regression")), len(of_kind("new-failure"))
    verdict = "FAIL" if comparison.gating else "OK"
    others = [
        _plural(len(comparison.xpasses), "xpass", "xpasses"),
        _plural(len(of_kind("known")), "known issue"),
        _plural(len(of_kind("fix")), "fix", "fixes"),
        f"{len(of_kind('not-reproduced'))} not reproduced",
        _plural(_names(comparison.gained) + len(of_kind("new-feature")), "new feature"),
        f"{_names(comparison.lost) + len(of_kind('lost'))} lost",
        _plural(len(comparison.behaviour_changes), "behaviour change"),
        _plural(len(of_kind("changed")), "other change"),
        f"{len(of_kind('removed'))} not in NEW",
    ]
    others = [text for text in others if not text.startswith("0 ")]
    return f"Result: {verdict}: {_plural(regressions, 'regression')}, " \
           f"{_plural(new_failures, 'new failure')}" + \
           "".join(f", {text}" for text in others) + \
           f"; {len(of_kind('unchanged'))} unchanged"


def _notes(comparison):
    notes = []
    if (comparison.base_run["profile"], comparison.base_run["filter"]) != \
            (comparison.new_run["profile"], comparison.new_run["filter"]):
        notes.append("note: the runs used different profiles or filters, so scenarios present "
                     "in only one report may be a selection difference, not a kernel one")
    if comparison.new_run["ended"] != "complete":
        notes.append(f"note: the NEW run did not complete ({comparison.new_run['ended']}); "
                     "scenarios it did not reach are listed as not in NEW")
    return notes


def render(comparison, verbosity=0):
    """The text compare prints.

    verbosity -1 (quiet): what gates or needs attention, then the summary line;
    0: every group that has rows; 1: also empty groups, the runs' counts, unchanged ids.
    """
    base, new = comparison.base_run, comparison.new_run
    lines = [f"compare {base['kernel']} [{base['file']}] -> {new['kernel']} [{new['file']}]"
             + (f", ids matching {comparison.id_filter}" if comparison.id_filter else "")]
    if verbosity > 0:
        lines += [_run_line("  BASE", base), _run_line("  NEW ", new)]
    lines += _notes(comparison)
    shown = sections(comparison) if verbosity >= 0 else sections(comparison)[:3]
    if verbosity > 0:
        shown.append(Section("Unchanged", "", [f"{c.id}: {c.new}"
                                               for c in comparison.of_kind("unchanged")]))
    for section in shown:
        if section.rows:
            lines.append(section.heading())
            lines.extend(f"  {row}" for row in section.rows)
        elif verbosity > 0:
            lines.append(f"{section.title}: none")
    lines.append(summary_line(comparison))
    return "\n".join(lines)
