"""--kernel-image: the release from a synthetic image's version string, the config check."""

import os
import subprocess

import pytest

from conftest import CI
from kernel_matrix import image
from kernel_matrix.common import CACHE, UsageError

BANNER = "6.13.0-rc1-patched (me@box) (gcc 12.2.0) #3 SMP PREEMPT_DYNAMIC Tue Nov 25 10:00:00 UTC 2026"


def bzimage(version=BANNER, at=0x3E00):
    """Bytes shaped like an x86 bzImage: the setup header's HdrS and kernel_version pointer."""
    data = bytearray(0x4400)
    data[0x202:0x206] = b"HdrS"
    data[0x20E:0x210] = (at - 0x200).to_bytes(2, "little")
    data[at:at + len(version) + 1] = version.encode() + b"\0"
    return bytes(data)


def config_text(**changes):
    """A .config with everything the guest needs; changes: NAME=value, or None to unset it."""
    values = {name: "y" for name in [*image.REQUIRED, *image.WANTED]} | {"CONFIG_LOCALVERSION": '"-patched"'}
    values |= {f"CONFIG_{name}": value for name, value in changes.items()}
    return "".join(f"{name}={value}\n" if value else f"# {name} is not set\n" for name, value in values.items())


@pytest.fixture
def tree(tmp_path):
    """A built kernel tree: arch/x86/boot/bzImage and its .config at the top."""
    boot = tmp_path / "linux" / "arch" / "x86" / "boot"
    boot.mkdir(parents=True)
    (boot / "bzImage").write_bytes(bzimage())
    (tmp_path / "linux" / ".config").write_text(config_text())
    return tmp_path / "linux"


def test_release_from_the_setup_header(tmp_path):
    (tmp_path / "bzImage").write_bytes(bzimage())
    assert image.release_of_image(tmp_path / "bzImage") == "6.13.0-rc1-patched"


def test_release_from_the_banner_without_a_setup_header(tmp_path):
    (tmp_path / "vmlinux").write_bytes(b"\x7fELF" + b"\0" * 100 + f"Linux version {BANNER}\n".encode())
    assert image.release_of_image(tmp_path / "vmlinux") == "6.13.0-rc1-patched"


@pytest.mark.parametrize("data", [
    pytest.param(b"not a kernel at all", id="no-header-no-banner"),
    pytest.param(bzimage(version="../../etc evil"), id="release-not-a-file-name"),
])
def test_no_release_is_a_usage_error(tmp_path, data):
    (tmp_path / "img").write_bytes(data)
    with pytest.raises(UsageError, match="no kernel version string"):
        image.release_of_image(tmp_path / "img")


@pytest.mark.skipif(not list((CACHE / "kernels").glob("*/vmlinuz")), reason=f"no Debian vmlinuz cached in {CACHE}")
def test_release_of_a_cached_debian_vmlinuz():
    vmlinuz = sorted((CACHE / "kernels").glob("*/vmlinuz"))[0]
    assert f"linux-image-{image.release_of_image(vmlinuz)}" == vmlinuz.parent.name


def test_config_found_in_the_tree_of_an_arch_boot_bzimage(tree):
    kernel = image.local_kernel(tree / "arch/x86/boot/bzImage")
    assert kernel.release == "6.13.0-rc1-patched" and kernel.config == tree / ".config"


def test_debian_style_config_beside_the_image_wins(tmp_path):
    (tmp_path / "vmlinuz-x").write_bytes(bzimage())
    (tmp_path / "config-6.13.0-rc1-patched").write_text(config_text())
    (tmp_path / ".config").write_text(config_text(IO_URING=None))
    assert image.local_kernel(tmp_path / "vmlinuz-x").config.name == "config-6.13.0-rc1-patched"


def test_no_config_boots_unchecked(tmp_path, capsys):
    (tmp_path / "bzImage").write_bytes(bzimage())
    assert image.local_kernel(tmp_path / "bzImage").config is None
    assert "not checked" in capsys.readouterr().out


@pytest.mark.parametrize("changes,said", [
    pytest.param({"IO_URING": None}, "CONFIG_IO_URING unset", id="io-uring"),
    pytest.param({"DEVTMPFS": None, "BLK_DEV_INITRD": None}, "CONFIG_BLK_DEV_INITRD unset, CONFIG_DEVTMPFS unset",
                 id="two-named-in-one-line"),
    pytest.param({"SERIAL_8250_CONSOLE": "m"}, "CONFIG_SERIAL_8250_CONSOLE=m (=m does not do", id="module"),
])
def test_config_lacking_what_the_guest_needs_is_refused(tree, changes, said):
    (tree / ".config").write_text(config_text(**changes))
    with pytest.raises(UsageError, match="lacks what the guest needs") as refused:
        image.local_kernel(tree / "arch/x86/boot/bzImage")
    assert said in str(refused.value) and "\n" not in str(refused.value)


def test_time_ns_missing_only_warns(tree, capsys):
    (tree / ".config").write_text(config_text(TIME_NS=None))
    image.local_kernel(tree / "arch/x86/boot/bzImage")
    assert "CONFIG_TIME_NS unset (the timens variants)" in capsys.readouterr().out


def test_a_file_that_is_no_config_is_refused(tmp_path):
    (tmp_path / "bzImage").write_bytes(bzimage())
    (tmp_path / "notes.txt").write_text("hello\n")
    with pytest.raises(UsageError, match="not a kernel config"):
        image.local_kernel(tmp_path / "bzImage", tmp_path / "notes.txt")


def test_matrix_refuses_an_incomplete_config_before_the_host(tree, tmp_path):
    """One line, exit 2, no qemu or apt needed (PATH holds neither)."""
    (tree / ".config").write_text(config_text(IO_URING=None, TMPFS="m"))
    done = subprocess.run([str(CI / "matrix"), "--kernel-image", str(tree / "arch/x86/boot/bzImage")],
                          capture_output=True, text=True, env=dict(os.environ, PATH=str(tmp_path)))
    assert done.returncode == 2 and done.stderr.count("\n") == 1
    assert "CONFIG_TMPFS=m, CONFIG_IO_URING unset" in done.stderr


def test_two_images_of_one_release_are_refused(tree, monkeypatch):
    from kernel_matrix import cli, kernels
    monkeypatch.setattr(kernels, "ensure_apt_lists", lambda: None)
    args = cli.parse_args(["--kernel-image", str(tree / "arch/x86/boot/bzImage")] * 2)
    with pytest.raises(UsageError, match="one release 6.13.0-rc1-patched, one report"):
        cli.select_kernels(args, cli.local_kernels(args))
