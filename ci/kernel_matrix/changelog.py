"""Debian kernel changelogs: the entries between two package versions, io_uring changes first.

A Debian changelog (deb-changelog(5)) is a list of entries, newest first: a line
`source (version) distributions; urgency=...`, change lines indented under it, and a trailer
` -- maintainer  date`. A kernel stable update lists the upstream commits under a link to the
upstream ChangeLog-6.x.y, one `- subsystem: title` line each (continued on deeper-indented lines).
A kernel image's changelog is cumulative and mixes the sources it was built from (linux,
linux-6.12, linux-signed-*), so entries are cut by version, not by source name.
"""

import gzip
import re
from dataclasses import dataclass, field

ENTRY = re.compile(r"^(?P<source>[a-z0-9][a-z0-9.+-]*) \((?P<version>[^)\s]+)\) (?P<where>[^;]*);")
TRAILER = re.compile(r"^ -- ")
CHANGE = re.compile(r"^\s+[*-] (?P<text>.*)")
UPSTREAM_LINK = re.compile(r"https?://\S*/ChangeLog-\S+")
# io_uring's own subsystems: io_uring/<file>: ... and io-wq (io_uring/io-wq.c).
IO_URING_TITLE = re.compile(r"^(io_uring|io-wq)\b")
UPSTREAM_VERSION = re.compile(r"^(\d+(?:\.\d+)*)")


@dataclass
class Entry:
    source: str
    version: str
    where: str
    changes: list = field(default_factory=list)    # one string per change, continuation lines joined
    upstream: list = field(default_factory=list)   # links to upstream ChangeLog-x.y.z files


def parse(text):
    """The entries of a Debian changelog, newest first."""
    entries, change_indent = [], None
    for line in text.splitlines():
        header = ENTRY.match(line)
        if header:
            entries.append(Entry(header["source"], header["version"], header["where"].strip()))
            change_indent = None
            continue
        if not entries or TRAILER.match(line) or not line.strip():
            change_indent = None
            continue
        entry = entries[-1]
        entry.upstream += UPSTREAM_LINK.findall(line)
        change = CHANGE.match(line)
        indent = len(line) - len(line.lstrip())
        if change:
            entry.changes.append(change["text"].strip())
            change_indent = indent
        elif change_indent is not None and indent > change_indent and not UPSTREAM_LINK.search(line):
            entry.changes[-1] += " " + line.strip()
    return entries


def read(path):
    return parse(gzip.decompress(path.read_bytes()).decode("utf-8", "replace"))


def upstream_key(version):
    """(6, 12, 101) of a Debian version 6.12.101-1~deb12u1 or 6.12.101+1~deb12u1."""
    match = UPSTREAM_VERSION.match(version)
    return tuple(int(part) for part in match.group(1).split(".")) if match else ()


def between(entries, last_good, first_bad):
    """The entries newer than last_good, up to and including first_bad (Debian versions).

    From first_bad's own entry down to the first entry that is last_good's version (exact), or
    older than it (by upstream version, for changelogs that skip the exact entry)."""
    start = next((i for i, entry in enumerate(entries) if entry.version == first_bad), None)
    if start is None:
        start = next((i for i, entry in enumerate(entries)
                      if upstream_key(entry.version) <= upstream_key(first_bad)), len(entries))
    picked = []
    for entry in entries[start:]:
        if entry.version == last_good or upstream_key(entry.version) < upstream_key(last_good):
            break
        picked.append(entry)
    return picked


def mentions_io_uring(change):
    return "io_uring" in change or "io-wq" in change


def candidates(entries):
    """(io_uring/io-wq changes, other changes mentioning io_uring, every other change), each a
    list of (version, change)."""
    own, mentioning, rest = [], [], []
    for entry in entries:
        for change in entry.changes:
            title = change.lstrip("- ")
            target = own if IO_URING_TITLE.match(title) else mentioning if mentions_io_uring(change) else rest
            target.append((entry.version, change))
    return own, mentioning, rest
