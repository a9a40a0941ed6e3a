"""Strict JSON reading, and writing that never clobbers, shared by every command."""

import json
import os
import stat
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


def _kind(mode):
    for test, name in ((stat.S_ISDIR, "a directory"), (stat.S_ISBLK, "a block device"),
                       (stat.S_ISSOCK, "a socket")):
        if test(mode):
            return name
    return "not a regular file"


def write_output(path, text, force=False):
    """Write text to path without ever replacing what is not a regular file.

    - absent or a regular file: the text goes to a temporary file in the same directory,
      then takes the name, so a reader never sees half a file; an existing file is replaced
      only with force (keeping its permissions), and without force a file that appears
      meanwhile is not overwritten either;
    - a symlink: followed, and the rules apply to its target (the link stays a link);
    - a character device or FIFO (/dev/null, /dev/stdout, a pipe): written in place, since
      nothing is replaced; no force needed;
    - anything else (a directory, a block device, a socket), or a missing parent directory:
      InputError, one line, nothing written.
    """
    path = Path(path)
    target = Path(os.path.realpath(path))
    try:
        mode = os.stat(target).st_mode
    except FileNotFoundError:
        mode = None
    except OSError as error:
        raise InputError(path, f"cannot write: {error.strerror or error}") from None
    if mode is not None and (stat.S_ISCHR(mode) or stat.S_ISFIFO(mode)):
        _write_in_place(path, target, text)
    elif mode is not None and not stat.S_ISREG(mode):
        raise InputError(path, f"is {_kind(mode)}; refusing to write a file there")
    elif not target.parent.is_dir():
        raise InputError(path, f"directory {target.parent} does not exist")
    elif mode is not None and not force:
        raise InputError(path, "already exists (use --force to overwrite)")
    else:
        _write_by_rename(path, target, text, mode, force)


def _write_in_place(path, target, text):
    try:
        fd = os.open(target, os.O_WRONLY | os.O_NOCTTY)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
    except OSError as error:
        raise InputError(path, f"cannot write: {error.strerror or error}") from None


def _write_by_rename(path, target, text, mode, force):
    try:
        fd, temporary = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp",
                                         dir=target.parent)
    except OSError as error:
        raise InputError(path, f"cannot write: {error.strerror or error}") from None
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.chmod(temporary, stat.S_IMODE(mode) if mode is not None else 0o644)
        if force:
            os.replace(temporary, target)
        else:
            # link() fails if the name appeared meanwhile, so nothing is overwritten by a race.
            os.link(temporary, target)
    except FileExistsError:
        raise InputError(path, "already exists (use --force to overwrite)") from None
    except OSError as error:
        raise InputError(path, f"cannot write: {error.strerror or error}") from None
    finally:
        if os.path.lexists(temporary):
            os.unlink(temporary)
