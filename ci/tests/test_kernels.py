"""Kernel selection from canned `apt-cache policy` output (captured on Debian 12, 2026-11)."""

import fnmatch
import re

import pytest

from conftest import DATA
from kernel_matrix import kernels
from kernel_matrix.common import UsageError

POLICY = {
    "linux-image-6.1.0-*-amd64": (DATA / "apt-policy-6.1.txt").read_text(),
    "linux-image-6.12.*+deb12-*amd64": (DATA / "apt-policy-6.12.txt").read_text(),
    # One that apt knows but cannot download.
    "linux-image-6.1.0-9-amd64": "linux-image-6.1.0-9-amd64:\n  Installed: (none)\n  Candidate: (none)\n"
                                 "  Version table:\n",
}


@pytest.fixture(autouse=True)
def canned_apt(monkeypatch):
    """apt_policy answers from the canned output, matching names as apt-cache policy globs do."""
    archive = kernels.parse_policy("".join(POLICY.values()))
    monkeypatch.setattr(kernels, "apt_policy", lambda pattern: {
        name: version for name, version in archive.items() if fnmatch.fnmatchcase(name, pattern)})


def test_parse_policy_reads_candidates():
    parsed = kernels.parse_policy(POLICY["linux-image-6.1.0-*-amd64"] + POLICY["linux-image-6.1.0-9-amd64"])
    assert parsed["linux-image-6.1.0-47-amd64"] == "6.1.170-3"
    assert parsed["linux-image-6.1.0-9-amd64"] is None
    assert "linux-image-6.1.0-50-cloud-amd64" in parsed


@pytest.mark.parametrize("series,rt,oldest,newest,count", [
    pytest.param("6.1", False, "linux-image-6.1.0-47-amd64", "linux-image-6.1.0-57-amd64", 11, id="6.1"),
    pytest.param("6.1", True, "linux-image-6.1.0-47-rt-amd64", "linux-image-6.1.0-57-rt-amd64", 11, id="6.1-rt"),
    pytest.param("6.12", False, "linux-image-6.12.100+deb12-amd64", "linux-image-6.12.117+deb12-amd64", 7,
                 id="6.12-without-meta-and-cloud"),
])
def test_offered_is_one_flavour_oldest_first(series, rt, oldest, newest, count):
    offered = kernels.offered(series, rt)
    assert (offered[0].package, offered[-1].package, len(offered)) == (oldest, newest, count)
    assert not any("cloud" in kernel.package or "dbg" in kernel.package for kernel in offered)


def test_offered_orders_numerically_not_lexically():
    versions = [kernel.version for kernel in kernels.offered("6.12")]
    assert versions == ["6.12.100-1~deb12u1", "6.12.101-1~deb12u1", "6.12.107-1~deb12u1", "6.12.111-1~deb12u1",
                        "6.12.113-1~deb12u1", "6.12.115-2~deb12u1", "6.12.117-1~deb12u1"]


@pytest.mark.parametrize("arg,package", [
    pytest.param("6.1", "linux-image-6.1.0-57-amd64", id="series-is-newest"),
    pytest.param("6.1-oldest", "linux-image-6.1.0-47-amd64", id="6.1-oldest"),
    pytest.param("6.1-newest", "linux-image-6.1.0-57-amd64", id="6.1-newest"),
    pytest.param("6.12-oldest", "linux-image-6.12.100+deb12-amd64", id="6.12-oldest"),
    pytest.param("6.12-newest", "linux-image-6.12.117+deb12-amd64", id="6.12-newest"),
    pytest.param("6.1-rt-oldest", "linux-image-6.1.0-47-rt-amd64", id="rt-oldest"),
    pytest.param("6.12.107", "linux-image-6.12.107+deb12-amd64", id="upstream-version"),
    pytest.param("6.1.192-2", "linux-image-6.1.0-56-amd64", id="debian-version"),
    pytest.param("6.12.115-2~deb12u1", "linux-image-6.12.115+deb12-amd64", id="backport-version"),
    pytest.param("linux-image-6.1.0-50-cloud-amd64", "linux-image-6.1.0-50-cloud-amd64", id="any-package-as-given"),
])
def test_resolve(arg, package):
    kernels.check_form(arg)
    kernel = kernels.resolve(arg)
    assert kernel.package == package and kernel.release == kernels.release_of(package) and kernel.version


@pytest.mark.parametrize("arg,said", [
    pytest.param("6.1.192", "matches linux-image-6.1.0-55-amd64 (6.1.192-1), linux-image-6.1.0-56-amd64 "
                 "(6.1.192-2), linux-image-6.1.0-57-amd64 (6.1.192-3)", id="ambiguous-version"),
    pytest.param("6.1.10", "apt offers no linux-image-* package of that version", id="version-not-offered"),
    pytest.param("linux-image-6.1.0-9-amd64", "no installable candidate", id="package-without-candidate"),
])
def test_resolve_refuses(arg, said):
    with pytest.raises(UsageError, match=re.escape(said)):
        kernels.resolve(arg)


@pytest.mark.parametrize("arg", ["7.0", "6.13", "6.12-latest", "6.12-oldest-rt", "newest", "6.12.x", ""])
def test_check_form_refuses_without_asking_apt(monkeypatch, arg):
    monkeypatch.setattr(kernels, "apt_policy", lambda pattern: pytest.fail("asked apt"))
    with pytest.raises(UsageError, match="expected a linux-image-"):
        kernels.check_form(arg)


@pytest.mark.parametrize("package,where", [
    pytest.param("linux-image-6.1.0-56-amd64", ("6.1", False), id="6.1"),
    pytest.param("linux-image-6.12.107+deb12-rt-amd64", ("6.12", True), id="6.12-rt"),
    pytest.param("linux-image-6.1.0-50-cloud-amd64", None, id="cloud"),
])
def test_series_of(package, where):
    assert kernels.series_of(package) == where


def test_select_resolves_each_kernel_once(monkeypatch):
    monkeypatch.setattr(kernels, "ensure_apt_lists", lambda: None)
    selected = kernels.select(["6.1", "6.1-newest", "6.12-oldest"])
    assert [kernel.package for kernel in selected] == ["linux-image-6.1.0-57-amd64", "linux-image-6.12.100+deb12-amd64"]
