"""A locally built kernel image (--kernel-image): its release, and whether its config has what
the guest needs, checked before anything boots."""

import re
from pathlib import Path

from kernel_matrix.common import UsageError, log
from kernel_matrix.kernels import Kernel

# Documentation/arch/x86/boot.rst: the real-mode setup header carries "HdrS" at 0x202 and, from
# boot protocol 2.00 on, kernel_version at 0x20E: a pointer to the version string, minus 0x200.
HDRS_OFFSET, HDRS = 0x202, b"HdrS"
KERNEL_VERSION_OFFSET, KERNEL_VERSION_BASE = 0x20E, 0x200
# An uncompressed image (vmlinux, some other arches' Image) holds the banner init/version.c prints.
BANNER = re.compile(rb"Linux version (\S+)")
RELEASE = re.compile(r"[0-9A-Za-z][0-9A-Za-z.+_~-]*")

# What the guest needs built in (=y: the guest loads no modules), and why.
REQUIRED = {
    "CONFIG_X86_64": "the harness is an x86-64 binary",
    "CONFIG_BINFMT_ELF": "the harness and busybox are ELF",
    "CONFIG_BINFMT_SCRIPT": "/init is a shell script",
    "CONFIG_BLK_DEV_INITRD": "the guest's root is the initramfs",
    "CONFIG_RD_GZIP": "the initramfs is gzip'd",
    "CONFIG_DEVTMPFS": "/init mounts devtmpfs on /dev",
    "CONFIG_TMPFS": "/tmp and /dev/shm are tmpfs",
    "CONFIG_PROC_FS": "/init mounts /proc",
    "CONFIG_SYSFS": "/init mounts /sys",
    "CONFIG_SERIAL_8250": "the console and the result stream are 8250 serial ports",
    "CONFIG_SERIAL_8250_CONSOLE": "console=ttyS0",
    "CONFIG_IO_URING": "the system under test",
    "CONFIG_NET": "the socket families run on loopback",
    "CONFIG_INET": "the socket families use TCP and UDP on loopback",
    "CONFIG_UNIX": "scenarios use AF_UNIX socket pairs",
}
# What only some scenarios need: their variants skip or err without it; worth a warning.
WANTED = {
    "CONFIG_TIME_NS": "the timens variants",
    "CONFIG_EVENTFD": "the eventfd scenarios",
    "CONFIG_FUTEX": "the futex opcodes",
}


def release_of_image(path):
    """The kernel release (`uname -r`) a kernel image announces."""
    data = Path(path).read_bytes()
    if data[HDRS_OFFSET:HDRS_OFFSET + 4] == HDRS:
        pointer = int.from_bytes(data[KERNEL_VERSION_OFFSET:KERNEL_VERSION_OFFSET + 2], "little")
        start = pointer + KERNEL_VERSION_BASE
        if pointer and start < len(data):
            words = data[start:data.find(b"\0", start)].split()
            release = words[0].decode("ascii", "replace") if words else ""
            if RELEASE.fullmatch(release):
                return release
    banner = BANNER.search(data)
    if banner and RELEASE.fullmatch(release := banner.group(1).decode("ascii", "replace")):
        return release
    raise UsageError(f"--kernel-image {path}: no kernel version string in it "
                     "(neither an x86 bzImage setup header nor a 'Linux version' banner)")


def config_beside(path, release):
    """The config found next to an image: Debian's config-<release> in /boot, the cache's
    config, or the .config of the tree an arch/x86/boot/bzImage was built in."""
    image = Path(path).resolve()
    candidates = [image.parent / f"config-{release}", image.parent / "config", image.parent / ".config"]
    if image.parent.match("arch/*/boot"):
        candidates.append(image.parents[3] / ".config")
    return next((candidate for candidate in candidates if candidate.is_file()), None)


def config_values(text):
    """CONFIG_* -> value, from a Kconfig .config ('# CONFIG_X is not set' reads as absent)."""
    values = {}
    for line in text.splitlines():
        name, equals, value = line.strip().partition("=")
        if equals and name.startswith("CONFIG_"):
            values[name] = value
    return values


def config_gaps(values):
    """(missing, unwanted): what the guest needs and lacks, what some scenarios want and lack."""
    def gap(name):
        value = values.get(name)
        return None if value == "y" else f"{name}={value}" if value else f"{name} unset"
    missing = [gap(name) for name in REQUIRED if gap(name)]
    unwanted = [f"{gap(name)} ({why})" for name, why in WANTED.items() if gap(name)]
    return missing, unwanted


def check_config(config, image):
    """Refuse (exit 2) an image whose config lacks what the guest needs; warn about the rest."""
    try:
        values = config_values(Path(config).read_text(errors="replace"))
    except OSError as error:
        raise UsageError(f"--kernel-config {config}: {error.strerror}") from None
    if not values:
        raise UsageError(f"{config}: not a kernel config (no CONFIG_ lines)")
    missing, unwanted = config_gaps(values)
    if missing:
        modules = " (=m does not do: the guest loads no modules)" if any(m.endswith("=m") for m in missing) else ""
        raise UsageError(f"{image}: config {config} lacks what the guest needs: {', '.join(missing)}{modules}")
    if unwanted:
        log(f"{image}: config {config} lacks {'; '.join(unwanted)}: those scenarios will skip or err")


def local_kernel(image, config=None):
    """A Kernel for --kernel-image, its config checked when given or found beside it."""
    image = Path(image)
    if not image.is_file():
        raise UsageError(f"--kernel-image {image}: no such file")
    release = release_of_image(image)
    config = Path(config) if config else config_beside(image, release)
    if config is None:
        log(f"{image}: release {release}; no config given or beside it (config-{release}, .config): not checked")
    else:
        check_config(config, image)
        log(f"{image}: release {release}; config {config} has what the guest needs")
    return Kernel(release, image=image, config=config)
