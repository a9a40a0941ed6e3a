"""Which Debian kernel packages to boot, and their vmlinuz in the cache outside git."""

import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

from kernel_matrix.common import CACHE, MatrixError, UsageError, log, run_quiet

# Debian's generic amd64 flavours; "-rt" selects the PREEMPT_RT flavour. -dbg, -unsigned and
# cloud packages never match (cloud kernels leave out drivers a qemu PC needs). The number
# in the pattern orders the releases of a series.
SERIES = {
    "6.1": ("linux-image-6.1.0-", r"linux-image-6\.1\.0-(\d+)-{flavour}amd64"),
    "6.12": ("linux-image-6.12.", r"linux-image-6\.12\.(\d+)\+deb12-{flavour}amd64"),
}
DEFAULT_SERIES = ("6.1", "6.12")


def apt_installable(prefix):
    """Package names starting with prefix that apt can download (apt-cache policy has a candidate)."""
    names = subprocess.run(["apt-cache", "pkgnames", prefix], capture_output=True, text=True).stdout.split()
    if not names:
        return []
    policy = subprocess.run(["apt-cache", "policy", *names], capture_output=True, text=True).stdout
    installable, current = [], None
    for line in policy.splitlines():
        if not line.startswith(" "):
            current = line.rstrip(":")
        elif line.split()[:1] == ["Candidate:"] and line.split()[1] != "(none)":
            installable.append(current)
    return installable


def newest(names, series, rt):
    """The newest package of a series (and flavour) among names, or None."""
    _, pattern = SERIES[series]
    name_re = re.compile(pattern.format(flavour="rt-" if rt else "") + "$")
    matches = [(int(m.group(1)), name) for name in names if (m := name_re.match(name))]
    return max(matches)[1] if matches else None


def resolve(arg):
    """A package name, or a short form: 6.1, 6.12, 6.1-rt, 6.12-rt (newest in apt)."""
    if arg.startswith("linux-image-"):
        if arg not in apt_installable(arg):
            raise UsageError(f"kernel package {arg!r}: apt has no installable candidate")
        return arg
    series, _, flavour = arg.partition("-")
    if series not in SERIES or flavour not in ("", "rt"):
        raise UsageError(f"kernel {arg!r}: expected a linux-image-* package or one of 6.1, 6.12, 6.1-rt, 6.12-rt")
    package = newest(apt_installable(SERIES[series][0]), series, flavour == "rt")
    if package is None:
        raise MatrixError(f"apt offers no {arg} kernel package (try: apt-get update)")
    return package


def select(kernel_args, rt):
    """Package names for the command line's KERNEL arguments (default: 6.1 and 6.12, + -rt)."""
    if not subprocess.run(["apt-cache", "pkgnames", "linux-image-"], capture_output=True, text=True).stdout:
        log("apt package lists are empty: running apt-get update")
        run_quiet(["apt-get", "update"], "apt-get update")
    wanted = kernel_args or [series + suffix for suffix in ["", "-rt"][:1 + rt] for series in DEFAULT_SERIES]
    packages = []
    for arg in wanted:
        package = resolve(arg)
        if package not in packages:
            packages.append(package)
    return packages


def release_of(package):
    """Debian names the image package after `uname -r`: linux-image-<release>."""
    return package.removeprefix("linux-image-")


def fetch(package):
    """Path of the cached vmlinuz of package, downloading and extracting it on first use."""
    home = CACHE / "kernels" / package
    vmlinuz = home / "vmlinuz"
    if vmlinuz.exists():
        log(f"{package}: cached {vmlinuz}")
        return vmlinuz
    home.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=home, prefix="fetch-") as scratch:
        log(f"{package}: downloading")
        run_quiet(["apt-get", "download", package], f"apt-get download {package}", cwd=scratch)
        debs = list(Path(scratch).glob("*.deb"))
        if len(debs) != 1:
            raise MatrixError(f"apt-get download {package} left {len(debs)} .deb files, expected 1")
        log(f"{package}: extracting vmlinuz")
        tree = Path(scratch) / "tree"
        run_quiet(["dpkg", "-x", str(debs[0]), str(tree)], f"dpkg -x {debs[0].name}")
        images = list((tree / "boot").glob("vmlinuz-*"))
        if len(images) != 1:
            raise MatrixError(f"{debs[0].name} holds {len(images)} boot/vmlinuz-* files, expected 1")
        for config in (tree / "boot").glob("config-*"):
            shutil.copyfile(config, home / "config")
        # Copy under a temporary name first so an interrupted fetch never looks cached.
        shutil.copyfile(images[0], home / "vmlinuz.part")
        os.replace(home / "vmlinuz.part", vmlinuz)
    log(f"{package}: cached {vmlinuz}")
    return vmlinuz
