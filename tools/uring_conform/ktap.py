"""A strict parser for KTAP version 1 (Documentation/dev-tools/ktap.rst in the kernel tree).

Rules enforced, quoted from ktap.rst:
- "All KTAP-formatted results begin with a version line": "KTAP version 1" (and, as the
  document allows for compatibility, "TAP version 13" / "TAP version 14"). Any other line
  that looks like a version line is rejected. Unknown lines before it are allowed.
- "Plan lines must follow the format of "1..N"" and "follow version lines"; the plan "may be
  omitted" (unless require_plan), but when present the number of results must equal N.
- "<result> <number> [<description>][ # [<directive>] [<diagnostic data>]]": result is "ok"
  or "not ok"; "The first test must have the number 1 and the number then must increase by
  1"; a line starting with "ok"/"not ok" that does not fit is malformed, not unknown.
- Directives SKIP, TODO, XFAIL, TIMEOUT, ERROR; "the result of the test case result line
  should be "not ok" if the TIMEOUT [or ERROR] directive is used" - enforced here.
- "Diagnostic lines are formatted as "# <diagnostic_description>"": kept with the next result
  at their level (diagnostics "regarding a test are directly before the test result line").
- Nested tests: "starting with another KTAP version line and test plan, and end with the
  overall result", "all lines in a subtest should be indented"; "If one of the subtests
  fail ... the parent test should also fail" - enforced: an "ok" parent with a failing
  subtest is rejected. ktap.rst says "One level of indentation is two spaces"; KUnit prints
  four, so a subtest is indented 2 or 4 spaces deeper than its parent, the same for all of
  its lines.
- "Unknown lines" are allowed anywhere, "will not influence the status", and are "not
  considered to be lines in a subtest"; they are collected (reject_unknown=True refuses them).
"""

import re
from dataclasses import dataclass, field

from uring_conform.errors import InputError

VERSION_LINES = ("KTAP version 1", "TAP version 13", "TAP version 14")
DIRECTIVES = ("SKIP", "TODO", "XFAIL", "TIMEOUT", "ERROR")
# A skipped, expected or to-do failure does not make its parent fail.
NOT_FAILING_DIRECTIVES = ("SKIP", "XFAIL", "TODO")
INDENT_STEPS = (2, 4)

_VERSION_LIKE = re.compile(r"^K?TAP version\b")
_PLAN = re.compile(r"^1\.\.(\d+)$")
_PLAN_LIKE = re.compile(r"^\d+\.\.")
_RESULT = re.compile(r"^(ok|not ok) ([0-9]+)(?: (.*))?$")
_RESULT_LIKE = re.compile(r"^(ok|not ok)(\s|$)")


@dataclass
class KtapTest:
    number: int
    ok: bool
    description: str
    directive: str            # one of DIRECTIVES or None
    directive_data: str       # text after the directive (or after "#" when there is none)
    line: int
    diagnostics: list = field(default_factory=list)
    subtests: "KtapDocument" = None

    @property
    def status(self):
        if self.directive in ("SKIP", "XFAIL", "TODO", "TIMEOUT", "ERROR"):
            return self.directive.lower()
        return "pass" if self.ok else "fail"

    @property
    def failed(self):
        return not self.ok and self.directive not in NOT_FAILING_DIRECTIVES

    def to_dict(self):
        node = {"number": self.number, "ok": self.ok, "description": self.description,
                "status": self.status, "line": self.line}
        if self.directive:
            node["directive"] = self.directive
        if self.directive_data:
            node["directive_data"] = self.directive_data
        if self.diagnostics:
            node["diagnostics"] = self.diagnostics
        if self.subtests:
            node["subtests"] = self.subtests.to_dict()
        return node


@dataclass
class KtapDocument:
    version: str
    indent: int
    line: int
    plan: int = None
    header_diagnostics: list = field(default_factory=list)
    tests: list = field(default_factory=list)
    trailing_diagnostics: list = field(default_factory=list)
    unknown_lines: list = field(default_factory=list)  # (line, text), top level only

    def to_dict(self):
        node = {"version": self.version, "plan": self.plan, "line": self.line,
                "tests": [test.to_dict() for test in self.tests]}
        if self.header_diagnostics:
            node["header_diagnostics"] = self.header_diagnostics
        if self.trailing_diagnostics:
            node["trailing_diagnostics"] = self.trailing_diagnostics
        if self.unknown_lines:
            node["unknown_lines"] = [{"line": line, "text": text}
                                     for line, text in self.unknown_lines]
        return node


@dataclass(frozen=True)
class _Token:
    line: int
    indent: int
    kind: str      # version, plan, result, diagnostic
    content: str


class KtapError(InputError):
    """Malformed KTAP; source is "FILE:LINE"."""


def _split_result(content):
    match = _RESULT.match(content)
    rest = match[3] or ""
    description, hash_sign, tail = rest.partition("#")
    description, tail = description.strip(), tail.strip()
    directive, data = None, tail
    if hash_sign and tail:
        word, _, remainder = tail.partition(" ")
        if word in DIRECTIVES:
            directive, data = word, remainder.strip()
    return match[1] == "ok", int(match[2]), description, directive, data


class _Parser:
    def __init__(self, text, source, require_plan, reject_unknown):
        self.source = source
        self.require_plan = require_plan
        self.tokens = []
        self.unknown = []
        self.position = 0
        for number, raw in enumerate(text.splitlines(), start=1):
            self._classify(number, raw, reject_unknown)

    def error(self, line, problem):
        return KtapError(f"{self.source}:{line}", problem)

    def _classify(self, number, raw, reject_unknown):
        content = raw.lstrip(" ")
        indent = len(raw) - len(content)
        content = content.rstrip()
        if content in VERSION_LINES:
            kind = "version"
        elif _VERSION_LIKE.match(content):
            raise self.error(number, f"unsupported version line {content!r} "
                                     f"(expected one of {', '.join(VERSION_LINES)})")
        elif _PLAN.match(content):
            kind = "plan"
        elif _PLAN_LIKE.match(content):
            raise self.error(number, f"malformed plan {content!r} (expected 1..N)")
        elif _RESULT.match(content):
            kind = "result"
        elif _RESULT_LIKE.match(content):
            raise self.error(number, f"malformed result line {content!r} "
                                     "(expected 'ok N description' or 'not ok N description')")
        elif content.startswith("#"):
            kind = "diagnostic"
        else:
            if reject_unknown and content:
                raise self.error(number, f"unknown line {content!r}")
            self.unknown.append((number, raw))
            return
        self.tokens.append(_Token(number, indent, kind, content))

    def peek(self):
        return self.tokens[self.position] if self.position < len(self.tokens) else None

    def take(self):
        token = self.tokens[self.position]
        self.position += 1
        return token

    def parse(self):
        first = self.peek()
        if first is None or first.kind != "version":
            where = first.line if first else 1
            raise self.error(where, "missing KTAP version line: KTAP output must begin with "
                                    "'KTAP version 1'")
        if first.indent != 0:
            raise self.error(first.line, "the top-level version line must not be indented")
        document = self.parse_block(0, [])
        document.unknown_lines = self.unknown
        return document

    def parse_block(self, indent, prelude):
        version = self.take()
        document = KtapDocument(version.content, indent, version.line,
                                header_diagnostics=[token.content for token in prelude])
        while (token := self.peek()) and token.indent == indent and token.kind == "diagnostic":
            document.header_diagnostics.append(self.take().content)
        if (token := self.peek()) and token.indent == indent and token.kind == "plan":
            plan_line = self.take()
            document.plan = int(_PLAN.match(plan_line.content)[1])
        elif self.require_plan:
            raise self.error(version.line, "no plan line (1..N) after the version line")

        pending_diagnostics, child_prelude, pending_child = [], [], None
        last_line = version.line
        while (token := self.peek()) and token.indent >= indent:
            if token.indent > indent:
                if token.kind == "diagnostic":
                    child_prelude.append(self.take())
                    continue
                if token.kind != "version":
                    raise self.error(token.line, f"{token.kind} line indented {token.indent} "
                                                 f"spaces inside a block indented {indent}: a "
                                                 "subtest must start with a version line")
                if token.indent - indent not in INDENT_STEPS:
                    raise self.error(token.line, f"subtest indented {token.indent - indent} "
                                                 "spaces deeper than its parent (expected 2 or 4)")
                if pending_child is not None:
                    raise self.error(token.line, "a second subtest block before the result line "
                                                 f"of the subtest at line {pending_child.line}")
                pending_child = self.parse_block(token.indent, child_prelude)
                child_prelude = []
                continue
            pending_diagnostics += [prelude_token.content for prelude_token in child_prelude]
            child_prelude = []
            token = self.take()
            last_line = token.line
            if token.kind == "diagnostic":
                pending_diagnostics.append(token.content)
            elif token.kind == "plan":
                raise self.error(token.line, "plan line must directly follow the version line "
                                             "(this one comes after test lines)")
            elif token.kind == "version" and indent == 0:
                raise self.error(token.line, "version line inside the top-level test list: "
                                             "a subtest must be indented, and only one KTAP "
                                             "document is allowed")
            elif token.kind == "version":
                raise self.error(token.line, "version line inside a subtest's test list: a "
                                             "subtest block must end with its parent's result "
                                             "line before the next block starts")
            else:
                document.tests.append(self.result(token, document, pending_diagnostics,
                                                  pending_child))
                pending_diagnostics, pending_child = [], None

        if pending_child is not None:
            raise self.error(pending_child.line, "subtest block is not followed by its parent's "
                                                 f"result line (indented {indent})")
        if document.plan is not None and len(document.tests) != document.plan:
            raise self.error(last_line, f"plan 1..{document.plan} (line {plan_line.line}) "
                                        f"but {len(document.tests)} test results")
        document.trailing_diagnostics = pending_diagnostics + [t.content for t in child_prelude]
        return document

    def result(self, token, document, diagnostics, subtests):
        ok, number, description, directive, data = _split_result(token.content)
        expected = len(document.tests) + 1
        if number != expected:
            raise self.error(token.line, f"test number {number}, expected {expected} "
                                         "(numbers start at 1 and increase by 1)")
        if document.plan is not None and number > document.plan:
            raise self.error(token.line, f"test {number} is beyond the plan 1..{document.plan}")
        if ok and directive in ("TIMEOUT", "ERROR"):
            raise self.error(token.line, f"'ok' with the {directive} directive "
                                         "(ktap.rst: the result should be 'not ok')")
        if ok and subtests is not None:
            failed = [test for test in subtests.tests if test.failed]
            if failed:
                raise self.error(token.line, f"test {number} is ok but its subtest "
                                             f"{failed[0].number} ({failed[0].description!r}, "
                                             f"line {failed[0].line}) failed")
        return KtapTest(number, ok, description, directive, data, token.line,
                        list(diagnostics), subtests)


def parse_ktap(text, source="<ktap>", require_plan=False, reject_unknown=False):
    """Parse KTAP text into a KtapDocument tree; raises KtapError ("FILE:LINE: problem")."""
    return _Parser(text, source, require_plan, reject_unknown).parse()


def render_tree(document, depth=0):
    """Indented one-line-per-test view of a parsed document."""
    lines = []
    if depth == 0:
        plan = f"plan 1..{document.plan}" if document.plan is not None else "no plan"
        lines.append(f"{document.version}, {plan}")
    for test in document.tests:
        label = f"{'ok' if test.ok else 'not ok'} {test.number} {test.description}".rstrip()
        detail = f"{test.directive} {test.directive_data}".strip() if test.directive else ""
        lines.append("  " * depth + f"{label} [{test.status}]" + (f" {detail}" if detail else ""))
        if test.subtests:
            lines.extend(render_tree(test.subtests, depth + 1))
    return lines


def count_statuses(document):
    """Statuses of the leaves (tests without subtests), for a one-line summary."""
    counts = {}
    for test in document.tests:
        if test.subtests and test.subtests.tests:
            for status, count in count_statuses(test.subtests).items():
                counts[status] = counts.get(status, 0) + count
        else:
            counts[test.status] = counts.get(test.status, 0) + 1
    return counts
