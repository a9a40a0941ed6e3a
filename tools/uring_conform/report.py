"""Load a uring-conform report and check it against reports/report.schema.json.

Besides the schema, a report must be internally consistent, because every other command
joins reports by result id and trusts the summary: ids are unique, each id starts with
``family/scenario`` of its own result, and the summary counts match the results.
"""

import os
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import jsonschema
from jsonschema.exceptions import best_match

from uring_conform.errors import InputError
from uring_conform.files import read_json

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_SCHEMA_PATH = REPO_ROOT / "reports" / "report.schema.json"
SCHEMA_ENV = "URING_CONFORM_SCHEMA"

# The one list of verdicts is the schema's enum ($defs/verdict), which the C++ Verdict enum
# also follows; the order is the schema's (pass, fail, skip, hang, crash, error).
VERDICTS = tuple(read_json(DEFAULT_SCHEMA_PATH)["$defs"]["verdict"]["enum"])
# The kernel did something wrong or the scenario could not finish: not a pass, not a skip.
# A scenario that passed or skipped before and ends in one of these now gates a compare.
BROKEN_VERDICTS = tuple(verdict for verdict in VERDICTS if verdict not in ("pass", "skip"))

# Longest excerpt of an offending value quoted in an error message.
MAX_QUOTED_VALUE = 80


def schema_path():
    """The report schema; $URING_CONFORM_SCHEMA overrides the copy in the repository."""
    return Path(os.environ.get(SCHEMA_ENV) or DEFAULT_SCHEMA_PATH)


@lru_cache(maxsize=4)
def _validator_for(path):
    schema = read_json(path)
    if not isinstance(schema, dict):
        raise InputError(path, "not a JSON Schema: top level is not an object")
    try:
        jsonschema.Draft202012Validator.check_schema(schema)
    except jsonschema.SchemaError as error:
        raise InputError(path, f"not a valid JSON Schema: {error.message}") from None
    # Identify the schema by the file it was read from, so that with $URING_CONFORM_SCHEMA
    # every "#/$defs/..." resolves inside that copy, whatever "$id" it declares.
    schema = {**schema, "$id": Path(path).resolve().as_uri()}
    return jsonschema.Draft202012Validator(schema)


def report_validator():
    return _validator_for(str(schema_path()))


def load_schema():
    return report_validator().schema


def _json_path(parts):
    text = ""
    for part in parts:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or "(top level)"


def _shorten(text):
    text = str(text)
    return text if len(text) <= MAX_QUOTED_VALUE else text[:MAX_QUOTED_VALUE] + "..."


def describe_schema_error(error):
    """One line: where in the document and what is wrong, without dumping the document."""
    where = _json_path(error.absolute_path)
    if error.validator == "required":
        return f"{where}: {error.message}"
    if error.validator in ("type", "enum", "const", "pattern", "minimum", "minLength"):
        return f"{where}: {_shorten(repr(error.instance))} violates " \
               f"{error.validator} {_shorten(repr(error.validator_value))}"
    return f"{where}: {_shorten(error.message)}"


def schema_problem(document, validator=None):
    """The most relevant schema violation as one line, or None when the document is valid."""
    validator = validator or report_validator()
    error = best_match(validator.iter_errors(document))
    return None if error is None else describe_schema_error(error)


def consistency_problem(document):
    """What makes a schema-valid report unusable for joining by id, or None."""
    seen = set()
    for index, result in enumerate(document["results"]):
        result_id = result["id"]
        if result_id in seen:
            return f"results[{index}].id: duplicate id {result_id!r}"
        seen.add(result_id)
        stem = f"{result['family']}/{result['scenario']}"
        if result_id != stem and not result_id.startswith(stem + "["):
            return f"results[{index}].id: {result_id!r} does not start with " \
                   f"family/scenario {stem!r}"
    summary = document["summary"]
    if summary["total"] != len(document["results"]):
        return f"summary.total is {summary['total']} but there are " \
               f"{len(document['results'])} results"
    for verdict in VERDICTS:
        counted = sum(1 for result in document["results"] if result["verdict"] == verdict)
        if summary[verdict] != counted:
            return f"summary.{verdict} is {summary[verdict]} but {counted} results are {verdict}"
    return None


@dataclass(frozen=True)
class Report:
    """A loaded, checked report; ``data`` is the JSON document itself."""

    path: str
    data: dict

    @property
    def release(self):
        return self.data["kernel"]["release"]

    @property
    def probe(self):
        return self.data["probe"]

    @property
    def run(self):
        return self.data["run"]

    @property
    def results(self):
        return self.data["results"]

    def results_by_id(self):
        return {result["id"]: result for result in self.data["results"]}


def check_document(source, document):
    """Raise InputError naming source unless document is a valid, consistent report."""
    if not isinstance(document, dict):
        raise InputError(source, f"not a report: top level is a JSON {type(document).__name__}, "
                                 "expected an object")
    problem = schema_problem(document) or consistency_problem(document)
    if problem:
        raise InputError(source, f"not a valid report: {problem}")


def load_report(path):
    """Read, parse and check one report file."""
    document = read_json(path)
    check_document(path, document)
    return Report(str(path), document)


def report_paths(directory):
    """The reports in a directory: <kernel-release>.json files, not its subdirectories.

    A kernel release (uname -r) starts with its version number, so a report's name starts
    with a digit; the other JSON files beside the reports (report.schema.json,
    stream.schema.json, kernel-splats.json) do not.
    """
    return sorted(path for path in Path(directory).glob("[0-9]*.json") if path.is_file())


def kernel_sort_key(release):
    """Order kernel releases by version: 6.1.0-25-amd64 < 6.1.0-28-amd64 < 6.12.9 < 6.18.0.

    Numbers compare as numbers, the rest as text, so the order is total and stable.
    """
    return tuple((0, int(token), "") if token.isdigit() else (1, 0, token)
                 for token in re.findall(r"\d+|[^\d]+", release))
