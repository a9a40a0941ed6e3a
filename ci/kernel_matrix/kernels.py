"""Which kernels to boot: Debian packages the archive offers (vmlinuz cached outside git) or
images built locally (kernel_matrix.image)."""

import functools
import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from kernel_matrix.common import CACHE, MatrixError, UsageError, log, run_quiet


@dataclass(frozen=True)
class Series:
    glob: str      # apt-cache policy pattern covering every package of the series
    pattern: str   # full name of one flavour; group 1 orders the releases of the series


# Debian 12's generic amd64 flavours; "-rt" selects the PREEMPT_RT flavour. -dbg, -unsigned and
# cloud packages never match (cloud kernels leave out drivers a qemu PC needs).
SERIES = {
    "6.1": Series("linux-image-6.1.0-*-amd64", r"linux-image-6\.1\.0-(\d+)-{flavour}amd64"),
    "6.12": Series("linux-image-6.12.*+deb12-*amd64", r"linux-image-6\.12\.(\d+)\+deb12-{flavour}amd64"),
}
DEFAULT_SERIES = ("6.1", "6.12")
SHORTHAND = re.compile(r"(?P<series>\d+\.\d+)(?P<rt>-rt)?(?:-(?P<end>oldest|newest))?")
# A Debian package version (6.1.170-3, 6.12.107-1~deb12u1) or its upstream part (6.12.107).
VERSION = re.compile(r"\d+\.\d+\.\d+(?:-[0-9A-Za-z.+~]+)?")
FORMS = ("a linux-image-* package, a version the archive offers (6.1.170-3, 6.12.107), "
         "or a series: 6.1, 6.12, with -rt and/or -oldest/-newest (e.g. 6.12-oldest, 6.1-rt-newest)")


@dataclass(frozen=True)
class Kernel:
    """One kernel to boot: a Debian package, or a local image (then package is None)."""
    release: str                # `uname -r` in the guest: logs and the report are named after it
    package: str | None = None
    version: str | None = None  # the package's Debian version
    image: Path | None = None
    config: Path | None = None  # the image's config, when known

    @property
    def label(self):
        return self.package or f"{self.image} ({self.release})"


def release_of(package):
    """Debian names the image package after `uname -r`: linux-image-<release>."""
    return package.removeprefix("linux-image-")


def parse_policy(text):
    """apt-cache policy output -> {package: candidate version, or None when there is none}."""
    candidates, current = {}, None
    for line in text.splitlines():
        if line and not line.startswith(" "):
            current = line.rstrip().rstrip(":")
            candidates.setdefault(current, None)
        elif current and line.split()[:1] == ["Candidate:"]:
            version = line.split()[1]
            candidates[current] = None if version == "(none)" else version
    return candidates


@functools.lru_cache(maxsize=None)
def apt_policy(pattern):
    """Candidates for the packages matching an apt-cache policy pattern (a name or a glob)."""
    done = subprocess.run(["apt-cache", "policy", pattern], capture_output=True, text=True)
    if done.returncode != 0:
        raise MatrixError(f"apt-cache policy {pattern} failed: {(done.stderr.strip().splitlines() or ['?'])[-1]}")
    return parse_policy(done.stdout)


def offered(series, rt=False):
    """The series' packages of one flavour that apt can download, oldest first."""
    name_re = re.compile(SERIES[series].pattern.format(flavour="rt-" if rt else "") + "$")
    found = [(int(m.group(1)), name, version) for name, version in apt_policy(SERIES[series].glob).items()
             if version and (m := name_re.match(name))]
    return [Kernel(release_of(name), name, version) for _, name, version in sorted(found)]


def series_of(package):
    """(series, rt) of a package name, or None when it is in no series we know."""
    for series, spec in SERIES.items():
        for rt in (False, True):
            if re.fullmatch(spec.pattern.format(flavour="rt-" if rt else ""), package):
                return series, rt
    return None


def check_form(arg):
    """Refuse a KERNEL argument of no known form, before anything asks apt."""
    shorthand = SHORTHAND.fullmatch(arg)
    if arg.startswith("linux-image-") or VERSION.fullmatch(arg):
        return
    if shorthand and shorthand["series"] in SERIES:
        return
    raise UsageError(f"kernel {arg!r}: expected {FORMS}")


def by_version(version):
    """The generic-flavour package whose Debian version (or its upstream part) is version."""
    matches = [kernel for series in SERIES for kernel in offered(series)
               if version in (kernel.version, kernel.version.split("-")[0])]
    if not matches:
        raise UsageError(f"kernel version {version!r}: apt offers no linux-image-* package of that version")
    if len(matches) > 1:
        names = ", ".join(f"{kernel.package} ({kernel.version})" for kernel in matches)
        raise UsageError(f"kernel version {version!r} matches {names}: give the Debian version or the package")
    return matches[0]


def resolve(arg):
    """The Kernel for one KERNEL argument (check_form has passed it)."""
    if arg.startswith("linux-image-"):
        version = apt_policy(arg).get(arg)
        if version is None:
            raise UsageError(f"kernel package {arg!r}: apt has no installable candidate")
        return Kernel(release_of(arg), arg, version)
    if VERSION.fullmatch(arg):
        return by_version(arg)
    shorthand = SHORTHAND.fullmatch(arg)
    packages = offered(shorthand["series"], bool(shorthand["rt"]))
    if not packages:
        raise MatrixError(f"apt offers no {arg} kernel package (try: apt-get update)")
    return packages[0] if shorthand["end"] == "oldest" else packages[-1]


def ensure_apt_lists():
    if not subprocess.run(["apt-cache", "pkgnames", "linux-image-"], capture_output=True, text=True).stdout:
        log("apt package lists are empty: running apt-get update")
        run_quiet(["apt-get", "update"], "apt-get update")
        apt_policy.cache_clear()


def default_set(rt):
    """The KERNEL arguments without any: newest 6.1 and 6.12 (and their -rt builds)."""
    return [series + suffix for suffix in ["", "-rt"][:1 + rt] for series in DEFAULT_SERIES]


def select(kernel_args):
    """Kernels for the command line's KERNEL arguments, each once."""
    ensure_apt_lists()
    kernels = []
    for arg in kernel_args:
        kernel = resolve(arg)
        if kernel not in kernels:
            kernels.append(kernel)
    return kernels


def fetch(kernel):
    """Path of the vmlinuz to boot: a local image as it is, a package's from the cache (downloaded
    and extracted on first use)."""
    if kernel.image is not None:
        return kernel.image
    return unpack(kernel.package)["vmlinuz"]


def cached(package):
    return CACHE / "kernels" / package


def unpack(package, keep_changelog=False):
    """The cache directory's files of a package: vmlinuz and config, and the Debian changelog when
    asked (bisect reads it). Downloads and extracts what is missing."""
    home = cached(package)
    files = {"vmlinuz": home / "vmlinuz", "config": home / "config"}
    if keep_changelog:
        files["changelog"] = home / "changelog.gz"
    if all(path.exists() for name, path in files.items() if name != "config"):
        log(f"{package}: cached {home}")
        return files
    home.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=home, prefix="fetch-") as scratch:
        log(f"{package}: downloading")
        run_quiet(["apt-get", "download", package], f"apt-get download {package}", cwd=scratch)
        debs = list(Path(scratch).glob("*.deb"))
        if len(debs) != 1:
            raise MatrixError(f"apt-get download {package} left {len(debs)} .deb files, expected 1")
        log(f"{package}: extracting")
        tree = Path(scratch) / "tree"
        run_quiet(["dpkg", "-x", str(debs[0]), str(tree)], f"dpkg -x {debs[0].name}")
        images = list((tree / "boot").glob("vmlinuz-*"))
        if len(images) != 1:
            raise MatrixError(f"{debs[0].name} holds {len(images)} boot/vmlinuz-* files, expected 1")
        found = {"vmlinuz": images[0], "config": next((tree / "boot").glob("config-*"), None)}
        if keep_changelog:
            # Debian policy names it changelog.Debian.gz; the kernel packages ship changelog.gz.
            doc = tree / "usr/share/doc" / package
            found["changelog"] = next((doc / name for name in ("changelog.Debian.gz", "changelog.gz")
                                       if (doc / name).is_file()), None)
            if found["changelog"] is None:
                raise MatrixError(f"{debs[0].name} holds no usr/share/doc/{package}/changelog(.Debian).gz")
        # vmlinuz last and under a temporary name first, so an interrupted fetch never looks cached.
        for name in sorted(found, key=lambda name: name == "vmlinuz"):
            if found[name] is not None:
                shutil.copyfile(found[name], files[name].with_suffix(".part"))
                os.replace(files[name].with_suffix(".part"), files[name])
    log(f"{package}: cached {home}")
    return files
