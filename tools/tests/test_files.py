"""write_output: outputs never replace what is not a regular file (issue 15, item 1)."""

import os
import stat
import threading

import pytest

from conftest import assert_one_line_error, run_cli
from uring_conform.errors import InputError
from uring_conform.files import write_output

needs_root = pytest.mark.skipif(os.geteuid() != 0,
                                reason="mknod of a character device needs root (CAP_MKNOD)")


def char_device(path, minor):
    """A memory character device node (major 1): minor 3 is null, 7 is full."""
    os.mknod(path, stat.S_IFCHR | 0o666, os.makedev(1, minor))
    return path


def leftovers(directory, *expected):
    return sorted(p.name for p in directory.iterdir() if p.name not in expected)


@pytest.mark.parametrize("force", [pytest.param(False, id="new"), pytest.param(True, id="forced")])
def test_absent_target_is_created(tmp_path, force):
    out = tmp_path / "out.json"
    write_output(out, "new\n", force=force)
    assert out.read_text() == "new\n"
    assert stat.S_IMODE(out.stat().st_mode) == 0o644
    assert leftovers(tmp_path, "out.json") == []


def test_regular_file_is_replaced_only_with_force_and_keeps_its_mode(tmp_path):
    out = tmp_path / "out.json"
    out.write_text("old")
    out.chmod(0o600)
    with pytest.raises(InputError, match="already exists"):
        write_output(out, "new")
    assert out.read_text() == "old"
    write_output(out, "new", force=True)
    assert out.read_text() == "new"
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    assert leftovers(tmp_path, "out.json") == []


def test_symlink_is_followed_and_stays_a_link(tmp_path):
    (tmp_path / "real").mkdir()
    target = tmp_path / "real" / "report.json"
    target.write_text("old")
    link = tmp_path / "link.json"
    link.symlink_to(target)
    with pytest.raises(InputError, match="already exists"):
        write_output(link, "new")
    write_output(link, "new", force=True)
    assert link.is_symlink() and os.readlink(link) == str(target)
    assert target.read_text() == "new"
    # The temporary file was made beside the target, so nothing is left beside the link.
    assert leftovers(tmp_path, "link.json", "real") == []
    assert leftovers(tmp_path / "real", "report.json") == []


def test_dangling_symlink_creates_its_target(tmp_path):
    link = tmp_path / "link.json"
    link.symlink_to(tmp_path / "made.json")
    write_output(link, "new")
    assert link.is_symlink() and (tmp_path / "made.json").read_text() == "new"


@needs_root
@pytest.mark.parametrize("force", [pytest.param(False, id="plain"),
                                   pytest.param(True, id="forced")])
def test_character_device_is_written_in_place(tmp_path, force):
    device = char_device(tmp_path / "null", 3)
    write_output(device, "into the void\n", force=force)
    assert stat.S_ISCHR(device.lstat().st_mode)
    assert leftovers(tmp_path, "null") == []


@needs_root
def test_symlink_to_a_character_device_is_followed(tmp_path):
    device = char_device(tmp_path / "null", 3)
    link = tmp_path / "out.json"
    link.symlink_to(device)
    write_output(link, "x", force=True)
    assert link.is_symlink() and stat.S_ISCHR(device.lstat().st_mode)


@needs_root
def test_full_device_gives_one_line_and_stays_a_device(tmp_path):
    device = char_device(tmp_path / "full", 7)
    with pytest.raises(InputError, match="No space left on device") as raised:
        write_output(device, "x" * 10000, force=True)
    assert "\n" not in raised.value.one_line()
    assert stat.S_ISCHR(device.lstat().st_mode)


def test_fifo_is_written_in_place(tmp_path):
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    received = []
    reader = threading.Thread(target=lambda: received.append(fifo.read_text()))
    reader.start()
    write_output(fifo, "through the pipe\n")
    reader.join(timeout=10)
    assert received == ["through the pipe\n"]
    assert stat.S_ISFIFO(fifo.lstat().st_mode)


@pytest.mark.parametrize("make,problem", [
    pytest.param(lambda path: path.mkdir(), "is a directory", id="directory"),
    pytest.param(lambda path: path.symlink_to(path.parent), "is a directory",
                 id="symlink-to-directory"),
    pytest.param(lambda path: path.symlink_to(path), "cannot write", id="symlink-loop"),
])
def test_what_cannot_hold_a_file_is_refused_with_one_line(tmp_path, make, problem):
    out = tmp_path / "out.json"
    make(out)
    for force in (False, True):
        with pytest.raises(InputError, match=problem) as raised:
            write_output(out, "x", force=force)
        assert "\n" not in raised.value.one_line()
    assert leftovers(tmp_path, "out.json") == []


def test_missing_parent_directory_is_refused_not_created(tmp_path):
    out = tmp_path / "missing" / "out.json"
    with pytest.raises(InputError, match=f"directory {tmp_path / 'missing'} does not exist"):
        write_output(out, "x", force=True)
    assert not (tmp_path / "missing").exists()


@needs_root
@pytest.mark.parametrize("argv", [
    pytest.param(["export", "--kcidb", "{report}", "-o", "{out}"], id="export"),
    pytest.param(["compare", "{report}", "{report}", "--json", "{out}"], id="compare-json"),
])
def test_cli_outputs_to_a_device_leave_the_device(tmp_path, make_report, argv):
    device = char_device(tmp_path / "null", 3)
    report = make_report("6.1")
    run = run_cli(*[arg.format(report=report, out=device) for arg in argv])
    assert run.status == 0, run.stderr
    assert stat.S_ISCHR(device.lstat().st_mode)


def test_cli_output_into_a_missing_directory_is_one_line(tmp_path, make_report):
    out = tmp_path / "nowhere" / "kcidb.json"
    assert_one_line_error(run_cli("export", "--kcidb", make_report("6.1"), "-o", out), out)
    assert not out.parent.exists()
