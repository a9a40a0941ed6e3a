#!/bin/sh
# SPDX-License-Identifier: MIT
# `git bisect run` step for a reproducer: build the kernel of the current tree,
# boot it under qemu (TCG), run the reproducer inside, map what happened to
# git-bisect exit codes: 0 good, 1 bad, 125 skip, 255 abort (host problem).
#
#   cd linux && git bisect start <bad> <good>
#   git bisect run /path/to/uring-conform/reproducers/bisect-run.sh [-- reproducer args]
#
# Environment:
#   KERNEL_IMAGE  boot this bzImage instead of building the tree (no build)
#   REPRODUCER    static reproducer binary (default: built from eventfd-cancel-race.c)
#   FIND_FIX      1: the commit that *fixed* the bug is sought; a reproduction is
#                 then "old" (exit 0) and a clean run "new" (exit 1). Use with
#                 git bisect start --term-old=broken --term-new=fixed.
#   BUILD_JOBS    make -j value (default 2)
#   BOOT_TIMEOUT  seconds before qemu is killed (default 300)
#   WORK          scratch directory (default: a new mktemp -d, kept for the logs)
# Reproducer arguments default to "-d 20 -w 10": TCG is slow, so the
# per-iteration deadline is raised to keep a slow guest from reading as a hang.
set -u

here=$(cd "$(dirname "$0")" && pwd)
work=${WORK:-$(mktemp -d /tmp/bisect-run.XXXXXX)}
jobs=${BUILD_JOBS:-2}
boot_timeout=${BOOT_TIMEOUT:-300}
mark="bisect-run-guest:"

say() { echo "[bisect-run] $*" >&2; }
abort() { say "host problem, aborting the bisection: $*"; exit 255; }
skip() { say "skip this commit: $*"; exit 125; }

[ "${1:-}" = "--" ] && shift
[ $# -gt 0 ] || set -- -d 20 -w 10
repro_args=$*

command -v qemu-system-x86_64 >/dev/null || abort "qemu-system-x86_64 missing"
busybox=/bin/busybox
file -L "$busybox" 2>/dev/null | grep -q 'statically linked' ||
	abort "$busybox missing or not static (apt-get install busybox-static)"
mkdir -p "$work" || abort "cannot create $work"

# The reproducer must be static: the initramfs has no libc.
reproducer=${REPRODUCER:-$work/eventfd-cancel-race}
if [ -z "${REPRODUCER:-}" ]; then
	cc -static -O2 -o "$reproducer" "$here/eventfd-cancel-race.c" -luring \
		-lpthread || abort "cannot build the static reproducer"
fi
# A bad command line would otherwise fail the same way in every guest.
usage_check=$("$reproducer" "$@" -h) || abort "reproducer: $usage_check"

# A kernel that does not build is not a verdict: skip it.
if [ -n "${KERNEL_IMAGE:-}" ]; then
	image=$KERNEL_IMAGE
else
	if [ ! -f Makefile ] || [ ! -d arch/x86 ]; then
		abort "run from a kernel tree"
	fi
	{ make defconfig &&
	  scripts/config -e IO_URING -e EVENTFD -e DEVTMPFS -e BLK_DEV_INITRD \
		-e RD_GZIP -e SERIAL_8250 -e SERIAL_8250_CONSOLE &&
	  make olddefconfig && make -j"$jobs" bzImage; } \
		>"$work/build.log" 2>&1 || skip "kernel build failed, see $work/build.log"
	image=arch/x86/boot/bzImage
fi
[ -f "$image" ] || abort "no kernel image $image"

# /init redirects its own stdio: the archive is built without root, so it
# cannot carry a /dev/console node and the kernel starts init without one.
root=$work/initramfs
rm -rf "$root" && mkdir -p "$root/bin" "$root/dev" "$root/proc" "$root/sys" "$root/tmp"
cp "$busybox" "$root/bin/busybox" || abort "cannot stage busybox"
cp "$reproducer" "$root/bin/reproducer" || abort "cannot stage the reproducer"
for applet in sh mount echo poweroff; do ln -s busybox "$root/bin/$applet"; done
cat >"$root/init" <<EOF
#!/bin/sh
export PATH=/bin
mount -t devtmpfs devtmpfs /dev
exec </dev/console >/dev/console 2>&1
mount -t proc proc /proc
mount -t sysfs sysfs /sys
echo "$mark running: reproducer $repro_args"
/bin/reproducer $repro_args
echo "$mark reproducer exit status \$?"
poweroff -f
EOF
chmod +x "$root/init"
(cd "$root" && find . | cpio -o -H newc --quiet | gzip -1) >"$work/initramfs.gz" ||
	abort "cannot pack the initramfs"

# Same machine shape as ci/matrix: 2 vCPUs, so the threads really race.
console=$work/console.log
timeout -k 5 "$boot_timeout" qemu-system-x86_64 -accel tcg,thread=multi \
	-cpu max -smp 2 -m 1G -nographic -monitor none -nic none -no-reboot \
	-serial "file:$console" -kernel "$image" -initrd "$work/initramfs.gz" \
	-append "console=ttyS0 panic=-1 quiet" >"$work/qemu.log" 2>&1
qemu_status=$?
[ -s "$console" ] || abort "qemu wrote no console output (status $qemu_status), see $work/qemu.log"

verdict_line=$(grep -a -E '^(ok|reproduced|cannot test|error):' "$console" | head -n 1)
status=$(sed -n "s/^$mark reproducer exit status \([0-9]*\).*/\1/p" "$console" | head -n 1)
say "console: $console"
[ -n "$verdict_line" ] && say "reproducer: $verdict_line"

# A reproduction may leave the process unkillable in exit (its stuck request
# is what exit waits for): the printed line is then the verdict.
case "${status:-none}:$verdict_line" in
0:ok:*) result=good ;;
1:reproduced:* | none:reproduced:*) result=bad ;;
125:*) skip "the reproducer cannot test this kernel" ;;
none:*)
	grep -aq 'Kernel panic' "$console" && skip "kernel panic, see $console"
	skip "no verdict from the guest (qemu status $qemu_status), see $console" ;;
*) skip "unexpected reproducer status $status, see $console" ;;
esac

if [ "${FIND_FIX:-0}" = 1 ]; then
	[ $result = bad ] && exit 0 || exit 1
fi
[ $result = good ] && exit 0 || exit 1
