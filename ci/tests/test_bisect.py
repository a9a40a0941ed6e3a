"""ci/bisect with a fake archive and a fake guest: the search, skips, the changelog cut."""

import gzip

import pytest

from conftest import result_line, start_line
from kernel_matrix import bisect, changelog, kernels
from kernel_matrix.common import MatrixError, UsageError

ID = "cancel/x[none]"
# A series of nine packages, oldest first, as kernels.offered gives them.
ARCHIVE = [kernels.Kernel(f"6.12.{n}+deb12-amd64", f"linux-image-6.12.{n}+deb12-amd64", f"6.12.{n}-1~deb12u1")
           for n in (100, 101, 105, 107, 111, 113, 115, 116, 117)]


class FakeGuest:
    """probe(kernel): verdict 'fail' from the first_bad-th package on, None for those that do not boot."""

    def __init__(self, first_bad, unbootable=(), reference="pass"):
        self.first_bad, self.unbootable, self.reference, self.probed = first_bad, set(unbootable), reference, []

    def __call__(self, kernel):
        self.probed.append(kernel.package)
        index = ARCHIVE.index(kernel) if kernel in ARCHIVE else None
        if index in self.unbootable:
            return bisect.Probe(kernel, None, "the guest never started the harness (guest-timeout)")
        verdict = "fail" if index >= self.first_bad else self.reference
        return bisect.Probe(kernel, {ID: verdict}, "", {ID: {"verdict": verdict}})


def quiet(message):
    pass


@pytest.mark.parametrize("first_bad", range(1, len(ARCHIVE)))
def test_search_finds_every_first_bad_package(first_bad):
    guest = FakeGuest(first_bad)
    found = bisect.search(ARCHIVE, guest, quiet)
    assert found.bad.kernel == ARCHIVE[first_bad] and found.last_good.kernel == ARCHIVE[first_bad - 1]
    assert not found.skipped
    # Two endpoints plus a binary search over the seven in between: at most 2 + 3 boots.
    assert len(guest.probed) == found.steps <= bisect.most_boots(len(ARCHIVE)) == 5
    assert len(set(guest.probed)) == len(guest.probed)


def test_search_probes_the_endpoints_first_then_the_middle():
    guest = FakeGuest(6)
    bisect.search(ARCHIVE, guest, quiet)
    assert guest.probed[:3] == [ARCHIVE[0].package, ARCHIVE[-1].package, ARCHIVE[4].package]


def test_a_package_that_does_not_boot_is_skipped_and_said_so():
    said = []
    guest = FakeGuest(6, unbootable={4})
    found = bisect.search(ARCHIVE, guest, said.append)
    assert found.bad.kernel == ARCHIVE[6] and found.last_good.kernel == ARCHIVE[5] and not found.skipped
    assert ARCHIVE[4].package in guest.probed
    assert any(ARCHIVE[4].package in line and "skipped" in line and "git bisect skip" in line for line in said)


def test_a_skipped_package_next_to_the_change_leaves_a_range():
    found = bisect.search(ARCHIVE, FakeGuest(4, unbootable={3}), quiet)
    assert found.last_good.kernel == ARCHIVE[2] and found.bad.kernel == ARCHIVE[4]
    assert found.skipped == [ARCHIVE[3]]


def test_every_step_is_logged_with_its_verdict():
    said = []
    found = bisect.search(ARCHIVE, FakeGuest(3), said.append)
    steps = [line for line in said if "->" in line]
    assert len(steps) == found.steps
    assert steps[0].endswith(f"{ID} pass -> the reference")
    assert steps[1].endswith("DIFFERS from good: cancel/x[none]: pass -> fail")
    assert any(line.endswith(f"{ID} pass -> same as good") for line in steps[2:])


def test_search_runs_from_good_to_bad_in_either_direction():
    """A fix: good is the newer package; the first differing one is found walking down."""
    reverse = ARCHIVE[::-1]
    found = bisect.search(reverse, FakeGuest(6, reference="pass"), quiet)
    assert found.bad.kernel == ARCHIVE[5] and found.last_good.kernel == ARCHIVE[6]


@pytest.mark.parametrize("guest,said", [
    pytest.param(FakeGuest(0), "agree", id="good-already-differs-so-they-agree"),
    pytest.param(FakeGuest(99), "agree", id="no-change"),
    pytest.param(FakeGuest(3, unbootable={0}), "good package linux-image-6.12.100", id="good-does-not-boot"),
    pytest.param(FakeGuest(3, unbootable={8}), "bad package linux-image-6.12.117", id="bad-does-not-boot"),
])
def test_search_refuses_what_it_cannot_bisect(guest, said):
    with pytest.raises(MatrixError, match=said):
        bisect.search(ARCHIVE, guest, quiet)


def test_timing_dependent_rounds_are_logged():
    probe = bisect.Probe(ARCHIVE[0], {ID: "fail"}, "",
                         {ID: {"verdict": "fail", "timing_dependent": True, "metrics": {"rounds": 200, "violations": 3}}})
    assert bisect.describe(probe) == f"{ID} fail (3 of 200 rounds violated)"


@pytest.mark.parametrize("good,bad,expected", [
    pytest.param("linux-image-6.12.101+deb12-amd64", "linux-image-6.12.113+deb12-amd64", [101, 105, 107, 111, 113],
                 id="forward"),
    pytest.param("linux-image-6.12.113+deb12-amd64", "linux-image-6.12.107+deb12-amd64", [113, 111, 107],
                 id="backward"),
])
def test_series_between(monkeypatch, good, bad, expected):
    monkeypatch.setattr(kernels, "offered", lambda series, rt: ARCHIVE)
    ends = [next(k for k in ARCHIVE if k.package == name) for name in (good, bad)]
    assert [int(k.package.split(".")[2].split("+")[0]) for k in bisect.series_between(*ends)] == expected


@pytest.mark.parametrize("good,bad", [
    pytest.param("linux-image-6.1.0-56-amd64", "linux-image-6.12.117+deb12-amd64", id="two-series"),
    pytest.param("linux-image-6.12.107+deb12-rt-amd64", "linux-image-6.12.117+deb12-amd64", id="two-flavours"),
    pytest.param("linux-image-6.12.107+deb12-amd64", "linux-image-6.12.107+deb12-amd64", id="same"),
])
def test_series_between_refuses(monkeypatch, good, bad):
    monkeypatch.setattr(kernels, "offered", lambda series, rt: ARCHIVE)
    with pytest.raises(UsageError):
        bisect.series_between(kernels.Kernel("r", good, "v"), kernels.Kernel("r", bad, "v"))


@pytest.mark.parametrize("lines,ended,verdicts,detail", [
    pytest.param([result_line(ID, "fail")], "complete", {ID: "fail"}, "", id="complete"),
    pytest.param([start_line(ID, 0, 1)], "guest-panic", {ID: "crash"}, "", id="panic-in-the-scenario"),
    pytest.param([], "guest-panic", {ID: "crash"}, "", id="panic-single-id-without-start-line"),
    pytest.param([], "guest-timeout", None, "no verdict for 1 of 1 ids", id="timeout-before-result"),
])
def test_judge_one_boot(make_run, header_line, lines, ended, verdicts, detail):
    run = make_run([header_line, *lines], ended=ended)
    run.panic_line = "Kernel panic - not syncing: Fatal exception"
    probe = bisect.judge(run, ARCHIVE[0], [ID])
    assert probe.verdicts == verdicts and detail in probe.detail


def test_judge_without_header_is_a_boot_failure(make_run):
    probe = bisect.judge(make_run([], ended="guest-error"), ARCHIVE[0], [ID])
    assert probe.verdicts is None and probe.detail.startswith("the guest never started the harness (guest-error")


CHANGELOG = """\
linux-signed-6.12-amd64 (6.12.107+1~deb12u1) bookworm-security; urgency=high

  * Sign kernel from linux-6.12 6.12.107-1~deb12u1

 -- Someone <someone@debian.org>  Thu, 10 Sep 2026 16:48:19 +0200

linux (6.12.107-1) trixie-security; urgency=high

  * New upstream stable update:
    https://www.kernel.org/pub/linux/kernel/v6.x/ChangeLog-6.12.106
    - PCI: host-generic: Fix NULL pointer dereference
    - io_uring/timeout: count cancelled timeouts
      in cq_timeouts (CVE-2026-00001)
    https://www.kernel.org/pub/linux/kernel/v6.x/ChangeLog-6.12.107
    - exec: cancel io_uring requests before de_thread()
    - io-wq: order the exit bit against worker creation

 -- Someone <someone@debian.org>  Wed, 09 Sep 2026 10:00:00 +0200

linux (6.12.105-1) trixie-security; urgency=high

  * New upstream stable update:
    https://www.kernel.org/pub/linux/kernel/v6.x/ChangeLog-6.12.105
    - ext4: stop retrying saturated xattr cache entries

 -- Someone <someone@debian.org>  Tue, 01 Sep 2026 10:00:00 +0200

linux-6.12 (6.12.101-1~deb12u1) bookworm-security; urgency=high

  * Rebuild for bookworm

 -- Someone <someone@debian.org>  Mon, 24 Aug 2026 10:00:00 +0200

linux (6.12.101-1) trixie-security; urgency=high

  * New upstream stable update:
    - io_uring/rw: fix missing ERESTARTSYS conversion (already in last good)

 -- Someone <someone@debian.org>  Sun, 23 Aug 2026 10:00:00 +0200
"""


def test_changelog_cut_between_last_good_and_first_bad():
    entries = changelog.between(changelog.parse(CHANGELOG), "6.12.101-1~deb12u1", "6.12.107-1~deb12u1")
    assert [entry.version for entry in entries] == ["6.12.107+1~deb12u1", "6.12.107-1", "6.12.105-1"]
    assert entries[1].upstream == ["https://www.kernel.org/pub/linux/kernel/v6.x/ChangeLog-6.12.106",
                                   "https://www.kernel.org/pub/linux/kernel/v6.x/ChangeLog-6.12.107"]
    assert "io_uring/timeout: count cancelled timeouts in cq_timeouts (CVE-2026-00001)" in entries[1].changes


def test_changelog_cut_stops_below_the_good_upstream_version_without_its_exact_entry():
    entries = changelog.between(changelog.parse(CHANGELOG), "6.12.103-1~deb12u1", "6.12.107-1~deb12u1")
    assert [entry.version for entry in entries][-1] == "6.12.105-1"


def test_changelog_cut_starts_at_the_first_bad_entry_in_a_newer_changelog():
    entries = changelog.between(changelog.parse(CHANGELOG), "6.12.101-1~deb12u1", "6.12.105-1")
    assert [entry.version for entry in entries] == ["6.12.105-1"]


def test_io_uring_changes_come_first():
    entries = changelog.between(changelog.parse(CHANGELOG), "6.12.101-1~deb12u1", "6.12.107-1~deb12u1")
    own, mentioning, rest = changelog.candidates(entries)
    assert [change for _, change in own] == ["io_uring/timeout: count cancelled timeouts in cq_timeouts "
                                             "(CVE-2026-00001)", "io-wq: order the exit bit against worker creation"]
    assert [change for _, change in mentioning] == ["exec: cancel io_uring requests before de_thread()"]
    assert "ext4: stop retrying saturated xattr cache entries" in [change for _, change in rest]
    assert not any("ERESTARTSYS" in change for _, change in own + mentioning + rest)


def test_print_changelog_reads_the_first_bad_package(tmp_path, monkeypatch, capsys):
    path = tmp_path / "changelog.gz"
    path.write_bytes(gzip.compress(CHANGELOG.encode()))
    monkeypatch.setattr(kernels, "unpack", lambda package, keep_changelog: {"changelog": path})
    last_good = bisect.Probe(kernels.Kernel("6.12.101+deb12-amd64", "p101", "6.12.101-1~deb12u1"), {ID: "pass"})
    first_bad = bisect.Probe(kernels.Kernel("6.12.107+deb12-amd64", "p107", "6.12.107-1~deb12u1"), {ID: "fail"})
    bisect.print_changelog(bisect.Bisection(last_good, first_bad, last_good, [], 3), tmp_path / "out")
    printed = capsys.readouterr().out
    assert printed.index("io_uring/timeout: count") < printed.index("exec: cancel io_uring")
    assert "upstream: https://www.kernel.org/pub/linux/kernel/v6.x/ChangeLog-6.12.107" in printed
    cut = (tmp_path / "out" / "6.12.101+deb12-amd64..6.12.107+deb12-amd64.changelog.txt").read_text()
    assert "ext4: stop retrying" in cut and "ERESTARTSYS" not in cut
