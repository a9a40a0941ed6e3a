"""Strict JSON reading and no-clobber writing shared by every command."""

import json
import os
import sys
import tempfile
from pathlib import Path

from uring_conform.errors import InputError

# Reports are small; anything this large is not one of ours.
MAX_INPUT_BYTES = 256 * 1024 * 1024


def read_bytes(path):
    """Read a whole input file ('-' = stdin), turning OS errors into InputError."""
    if str(path) == "-":
        return sys.stdin.buffer.read()
    try:
        with open(path, "rb") as handle:
            data = handle.read(MAX_INPUT_BYTES + 1)
    except OSError as error:
        raise InputError(path, f"cannot read: {error.strerror or error}") from None
    if len(data) > MAX_INPUT_BYTES:
        raise InputError(path, f"larger than {MAX_INPUT_BYTES} bytes")
    return data


def _reject_constant(name):
    raise ValueError(f"{name} is not valid JSON")


def _reject_duplicate_keys(pairs):
    result = {}
    for key, value in pairs:
        if key in result:
            raise ValueError(f"duplicate key {key!r}")
        result[key] = value
    return result


def parse_json(text):
    """json.loads that refuses what RFC 8259 refuses (NaN, Infinity) and duplicate keys.

    Raises ValueError (json.JSONDecodeError is one) or RecursionError.
    """
    return json.loads(text, parse_constant=_reject_constant,
                      object_pairs_hook=_reject_duplicate_keys)


def read_json(path):
    """Load one JSON document from a file; every failure is an InputError naming the file."""
    data = read_bytes(path)
    if not data.strip():
        raise InputError(path, "empty file")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise InputError(path, f"not UTF-8 text (byte {error.start})") from None
    try:
        return parse_json(text)
    except json.JSONDecodeError as error:
        raise InputError(path, f"not valid JSON: {error.msg} at line {error.lineno} "
                               f"column {error.colno}") from None
    except ValueError as error:
        raise InputError(path, f"not valid JSON: {error}") from None
    except RecursionError:
        raise InputError(path, "not valid JSON: nested too deeply") from None


def write_output(path, text, force=False):
    """Write text to path atomically; refuse to replace an existing file unless force.

    The text goes to a temporary file in the same directory first, so a reader never sees
    half a file, and an existing file is only replaced when asked for.
    """
    path = Path(path)
    if path.exists() and not force:
        raise InputError(path, "already exists (use --force to overwrite)")
    directory = path.parent if str(path.parent) else Path(".")
    try:
        fd, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=directory)
    except OSError as error:
        raise InputError(path, f"cannot write: {error.strerror or error}") from None
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.chmod(temporary, 0o644)
        if force:
            os.replace(temporary, path)
        else:
            # link() fails if path appeared meanwhile, so nothing is overwritten by a race.
            os.link(temporary, path)
    except FileExistsError:
        raise InputError(path, "already exists (use --force to overwrite)") from None
    except OSError as error:
        raise InputError(path, f"cannot write: {error.strerror or error}") from None
    finally:
        if os.path.exists(temporary):
            os.unlink(temporary)
