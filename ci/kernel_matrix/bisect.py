"""ci/bisect: the first Debian kernel package of a series whose verdict on some scenarios differs
from a known-good package's, and the changelog entries that came with it.

A binary search over the packages the archive offers between --good and --bad, each probed by
booting it under qemu with only the matching scenarios; a package that does not boot is skipped
(as `git bisect skip` does) and the answer then may be a range. Then the first differing
package's changelog is cut between the two versions and printed, io_uring and io-wq first.
"""

import json
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from kernel_matrix import changelog, cli, guest, initramfs, kernels
from kernel_matrix.common import REPO, MatrixError, UsageError, run_command, run_quiet

DEFAULT_OUT = REPO / "reports" / "local" / "bisect"
DESCRIPTION = ("Binary search over the Debian kernel packages of one series between --good and --bad for the first "
               "whose verdict on ID differs from --good's; then the changelog entries it brought, io_uring first.")
EPILOG = (f"ID: a scenario id or glob as in `uring-conform run --filter` (brackets match themselves). "
          f"PKG: {kernels.FORMS}; both of one series and flavour. Exit: 0 found (a package, or a range when "
          "packages in it did not boot), 1 the host failed, an endpoint did not boot or good and bad agree, "
          "2 bad usage. See ci/README.md.")
SHOWN_IDS = 4


def say(message):
    print(f"[bisect] {message}", flush=True)


@dataclass
class Probe:
    """One package's verdicts on the probed ids, or why it could not be judged (verdicts None)."""
    kernel: kernels.Kernel
    verdicts: dict | None
    detail: str = ""
    results: dict = field(default_factory=dict, repr=False)


@dataclass
class Bisection:
    good: Probe
    bad: Probe            # the first package found to differ
    last_good: Probe
    skipped: list         # packages between last_good and bad that did not boot
    steps: int


def differences(reference, verdicts):
    """'id: good -> now' for each id whose verdict differs, in id order."""
    return [f"{id_}: {reference.get(id_, 'missing')} -> {verdicts.get(id_, 'missing')}"
            for id_ in sorted(set(reference) | set(verdicts)) if reference.get(id_) != verdicts.get(id_)]


def describe(probe):
    """A probe's verdicts on one line, with rounds and violations of timing-dependent rules."""
    if probe.verdicts is None:
        return f"skipped: {probe.detail}"
    parts = []
    for id_, verdict in sorted(probe.verdicts.items())[:SHOWN_IDS]:
        metrics = probe.results.get(id_, {}).get("metrics", {})
        rounds = (f" ({metrics.get('violations', '?')} of {metrics['rounds']} rounds violated)"
                  if probe.results.get(id_, {}).get("timing_dependent") and "rounds" in metrics else "")
        parts.append(f"{id_} {verdict}{rounds}")
    more = len(probe.verdicts) - SHOWN_IDS
    return ", ".join(parts) + (f", and {more} more" if more > 0 else "")


def most_boots(count):
    """Boots a search over count packages takes at most without skips: both ends, then halving
    the count - 2 packages between them."""
    return 2 + (count - 2).bit_length()


def search(packages, probe, say=say):
    """Bisect packages (ordered from the good end to the bad end) with probe(kernel) -> Probe.

    The first is the reference; the last must differ from it. Between them, the untested,
    unskipped package nearest the middle is probed each step: one like the reference moves the
    good end up, one that differs moves the bad end down, one without verdicts is skipped."""
    def step(index, why):
        nonlocal steps
        steps += 1
        kernel = packages[index]
        say(f"step {steps}: {kernel.package} ({kernel.version}), {why}")
        result = probe(kernel)
        if result.verdicts is None:
            verdict = "skipped: it could not be judged, as git bisect skip"
        elif reference is None:
            verdict = "the reference"
        elif result.verdicts == reference:
            verdict = "same as good"
        else:
            verdict = "DIFFERS from good: " + "; ".join(differences(reference, result.verdicts)[:SHOWN_IDS])
        say(f"step {steps}: {kernel.package}: {describe(result)} -> {verdict}")
        return result

    steps, reference = 0, None
    good = step(0, "the good end")
    if good.verdicts is None:
        raise MatrixError(f"the good package {packages[0].package} could not be judged ({good.detail})")
    reference = good.verdicts
    bad = step(len(packages) - 1, "the bad end")
    if bad.verdicts is None:
        raise MatrixError(f"the bad package {packages[-1].package} could not be judged ({bad.detail})")
    if bad.verdicts == reference:
        raise MatrixError(f"{packages[0].package} and {packages[-1].package} agree ({describe(good)}): "
                          "nothing to bisect")
    low, high, probes, skipped = 0, len(packages) - 1, {0: good, len(packages) - 1: bad}, set()
    while True:
        untested = [i for i in range(low + 1, high) if i not in skipped]
        if not untested:
            break
        middle = (low + high) / 2
        index = min(untested, key=lambda i: (abs(i - middle), i))
        probes[index] = step(index, f"{len(untested)} untested between "
                                    f"{packages[low].version} and {packages[high].version}")
        if probes[index].verdicts is None:
            skipped.add(index)
        elif probes[index].verdicts == reference:
            low = index
        else:
            high = index
    return Bisection(good, probes[high], probes[low], [packages[i] for i in sorted(skipped) if low < i < high], steps)


def judge(run, kernel, ids):
    """A Probe from one guest boot: the verdicts of ids, or None when the guest could not tell.

    A guest kernel panic inside a scenario is that scenario's verdict, crash: the one whose
    start line has no result (or, on a harness without start lines, the only id without one)."""
    if run.reader.header is None:
        return Probe(kernel, None, f"the guest never started the harness ({run.ended}: {run.detail or 'no detail'})")
    results = {id_: run.reader.results[id_] for id_ in ids if id_ in run.reader.results}
    if run.ended == "guest-panic":
        lacking = [id_ for id_ in ids if id_ not in results]
        crashed = (run.reader.unfinished or {}).get("id") or (lacking[0] if len(lacking) == 1 else None)
        if crashed in ids:
            results[crashed] = {"id": crashed, "verdict": "crash", "reason": run.panic_line}
    lacking = [id_ for id_ in ids if id_ not in results]
    if lacking:
        return Probe(kernel, None, f"no verdict for {len(lacking)} of {len(ids)} ids, first {lacking[0]} "
                                   f"({run.ended}: {run.detail or 'no detail'})")
    return Probe(kernel, {id_: result["verdict"] for id_, result in results.items()}, "", results)


class GuestProbe:
    """probe(kernel) for search: boot the package with the bisect initramfs."""

    def __init__(self, plan, ids):
        self.plan, self.ids = plan, ids

    def __call__(self, kernel):
        # The changelog comes along: the package found first to differ is read for it.
        vmlinuz = kernels.unpack(kernel.package, keep_changelog=True)["vmlinuz"]
        run = guest.run_guest(vmlinuz, self.plan.initrd, self.plan.logs_dir, self.plan.accel,
                              self.plan.args.boot_timeout, kernel.release)
        cli.say_how_it_ended(run)
        return judge(run, kernel, self.ids)


def parse_args(argv):
    parser = cli.Parser(prog="ci/bisect", description=DESCRIPTION, epilog=EPILOG)
    parser.add_argument("id", metavar="ID")
    parser.add_argument("--good", required=True, metavar="PKG", help="a package whose verdict is the reference")
    parser.add_argument("--bad", required=True, metavar="PKG", help="a package whose verdict differs")
    parser.add_argument("--profile", default="full", choices=cli.PROFILES,
                        help="uring-conform run --profile (default full: the rounds a timing-dependent rule needs)")
    parser.add_argument("--duration", type=cli.positive_seconds, metavar="SECONDS",
                        help="uring-conform run --duration: a longer budget for long-running scenarios")
    parser.add_argument("--timeout", type=cli.positive_seconds, help="per-scenario watchdog (uring-conform run --timeout)")
    parser.add_argument("--boot-timeout", type=cli.positive_seconds, default=900, metavar="SECONDS",
                        help="wall-clock limit per boot (default 900)")
    parser.add_argument("--out-dir", type=Path, default=DEFAULT_OUT, metavar="DIR",
                        help=f"guest logs in DIR/logs/, the changelog cut in DIR/ (default {DEFAULT_OUT.relative_to(REPO)})")
    parser.add_argument("--binary", type=Path, metavar="PATH", help="static uring-conform for the guests (as ci/matrix)")
    parser.add_argument("--accel", choices=("auto", "kvm", "tcg"), default="auto", help="as ci/matrix")
    args = parser.parse_args(argv)
    if not args.id.strip():
        raise UsageError("ID is empty: give a scenario id or glob, e.g. 'cancel/*'")
    for end in (args.good, args.bad):
        kernels.check_form(end)
    return args


def series_between(good, bad):
    """The packages of good's series and flavour from good to bad, both included, in that order."""
    where = {end.package: kernels.series_of(end.package) for end in (good, bad)}
    if None in where.values() or len(set(where.values())) != 1:
        raise UsageError(f"--good {good.package} and --bad {bad.package} are not of one series and flavour "
                         f"({', '.join(sorted(kernels.SERIES))}, generic or -rt)")
    series, rt = where[good.package]
    packages = kernels.offered(series, rt)
    names = [kernel.package for kernel in packages]
    if good.package == bad.package:
        raise UsageError(f"--good and --bad are both {good.package}")
    low, high = names.index(good.package), names.index(bad.package)
    return packages[low:high + 1] if low < high else packages[high:low + 1][::-1]


def matching_ids(binary, pattern):
    listing = json.loads(run_quiet([str(binary), "list", "--filter", pattern, "--json"], "uring-conform list --json"))
    if not listing:
        hint = f" (did you mean '{pattern}/*'?)" if "/" not in pattern else ""
        raise UsageError(f"ID {pattern!r} matches no scenario{hint}")
    return [entry["id"] for entry in listing]


def print_changelog(found, out_dir):
    """The changelog entries first_bad brought since last_good: io_uring's own first, then the
    rest in a file."""
    last_good, first_bad = found.last_good.kernel, found.bad.kernel
    # The first bad package's changelog is cumulative: it holds every entry of the range.
    entries = changelog.between(changelog.read(kernels.unpack(first_bad.package, keep_changelog=True)["changelog"]),
                                last_good.version, first_bad.version)
    own, mentioning, rest = changelog.candidates(entries)
    out_dir.mkdir(parents=True, exist_ok=True)
    cut = out_dir / f"{last_good.release}..{first_bad.release}.changelog.txt"
    with open(cut, "w") as text:
        for entry in entries:
            text.write(f"{entry.source} ({entry.version}) {entry.where}\n")
            text.writelines(f"  {link}\n" for link in entry.upstream)
            text.writelines(f"  - {change}\n" for change in entry.changes)
    total = sum(len(entry.changes) for entry in entries)
    print(f"\nchangelog {last_good.version} -> {first_bad.version}: {len(entries)} entries, {total} changes")
    for link in [link for entry in entries for link in entry.upstream]:
        print(f"  upstream: {link}")
    print(f"\ncandidates: io_uring and io-wq changes ({len(own)}):")
    for version, change in own:
        print(f"  {version:24} {change}")
    print(f"\nother changes that mention io_uring ({len(mentioning)}):")
    for version, change in mentioning:
        print(f"  {version:24} {change}")
    print(f"\nthe other {len(rest)} changes, and all of the above by entry: {cut}")


def report(found):
    last, first = found.last_good.kernel, found.bad.kernel
    say(f"done in {found.steps} probes; last good {last.package} ({last.version}): {describe(found.last_good)}")
    if found.skipped:
        names = ", ".join(kernel.package for kernel in found.skipped)
        say(f"the first differing package is one of: {names} (skipped: they did not boot), {first.package}")
    say(f"first differing package: {first.package} ({first.version}): "
        + "; ".join(differences(found.good.verdicts, found.bad.verdicts)))


def main(argv):
    args = parse_args(argv)
    cli.check_host()
    kernels.ensure_apt_lists()
    good, bad = kernels.resolve(args.good), kernels.resolve(args.bad)
    packages = series_between(good, bad)
    binary = cli.harness_binary(args.binary)
    ids = matching_ids(binary, args.id)
    say(f"{len(ids)} scenario ids match {args.id!r}; {len(packages)} packages from {good.package} to "
        f"{bad.package}: at most {most_boots(len(packages))} boots")
    (args.out_dir / "logs").mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="uring-conform-bisect-") as scratch:
        scratch = Path(scratch)
        probe_initrd = scratch / "probe.cpio.gz"
        initramfs.build(probe_initrd, binary, "true")
        accel = guest.choose_accel(args.accel, kernels.fetch(good), probe_initrd, scratch)
        initrd = scratch / "initramfs.cpio.gz"
        initramfs.build(initrd, binary, initramfs.run_command(args.profile, f"qemu-{accel}", args.id,
                                                              args.timeout, args.duration))
        plan = cli.Plan(args, binary, accel, initrd, scratch)
        found = search(packages, GuestProbe(plan, ids))
    report(found)
    print_changelog(found, args.out_dir)
    return 0


def run(argv):
    return run_command(main, argv, "ci/bisect")
