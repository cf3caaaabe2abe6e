"""nasgraph.outfile.atomic_write: whole file or nothing, the user's file kept on failure, links followed."""
import os
import stat

import pytest

from nasgraph.errors import NasgraphError
from nasgraph.outfile import atomic_write, streams_in_place


def test_writes_the_file_and_leaves_no_temporary(tmp_path):
    out = tmp_path / "sub" / "a.json"
    atomic_write(out, lambda f: f.write(b"new"))
    assert out.read_bytes() == b"new" and sorted(p.name for p in out.parent.iterdir()) == ["a.json"]


def test_a_failing_writer_keeps_the_old_file_and_cleans_up(tmp_path):
    out = tmp_path / "a.txt"
    out.write_bytes(b"keep me")

    def half(f):
        f.write(b"half")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        atomic_write(out, half)
    assert out.read_bytes() == b"keep me" and os.listdir(tmp_path) == ["a.txt"]


def test_an_os_error_is_one_line_naming_the_file(tmp_path):
    out = tmp_path / "a.txt"

    def full(f):
        raise OSError(28, "No space left on device")

    with pytest.raises(NasgraphError, match=r"cannot write .*a\.txt: No space left on device \(nothing was written\)"):
        atomic_write(out, full)
    assert os.listdir(tmp_path) == []


def test_a_read_only_folder_is_one_line(tmp_path):
    if os.geteuid() == 0:
        pytest.skip("root writes into read-only folders")
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o500)
    try:
        with pytest.raises(NasgraphError, match="cannot write .*: Permission denied"):
            atomic_write(folder / "a.txt", lambda f: f.write(b"x"))
    finally:
        folder.chmod(0o700)


def test_keeps_the_replaced_files_permissions_and_follows_a_link(tmp_path):
    real = tmp_path / "real.yaml"
    real.write_bytes(b"old")
    real.chmod(0o640)
    link = tmp_path / "link.yaml"
    link.symlink_to(real)
    atomic_write(link, lambda f: f.write(b"new"))
    assert link.is_symlink() and real.read_bytes() == b"new"
    assert stat.S_IMODE(real.stat().st_mode) == 0o640


def test_refuses_a_named_pipe_and_streams_devices(tmp_path):
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    with pytest.raises(NasgraphError, match="is a named pipe"):
        atomic_write(fifo, lambda f: f.write(b"x"))
    assert stat.S_ISFIFO(fifo.stat().st_mode)
    assert streams_in_place(fifo) and streams_in_place("/dev/stdout") and not streams_in_place(tmp_path / "x")


def test_a_stream_name_is_refused_even_when_it_reaches_a_regular_file(tmp_path):
    """`derive -o /dev/stdout --force > file` as root renamed the spec over the link /dev/stdout itself;
    /proc/self/fd/N of a regular file is the same kind of name (and safe to try)."""
    real = tmp_path / "redirected.txt"
    with open(real, "wb") as fh:
        name = f"/proc/self/fd/{fh.fileno()}"
        with pytest.raises(NasgraphError, match="is a stream or device name"):
            atomic_write(name, lambda f: f.write(b"x"))
    assert real.read_bytes() == b"" and os.listdir(tmp_path) == ["redirected.txt"]


@pytest.mark.skipif(not os.path.isdir("/dev/shm") or not os.access("/dev/shm", os.W_OK),
                    reason="no writable /dev/shm on this machine")
def test_a_run_in_the_dev_shm_scratch_folder_rewrites_its_files():
    """/dev/shm holds plain files on tmpfs: a run folder there rewrites best.pt and its reports."""
    import tempfile

    with tempfile.TemporaryDirectory(dir="/dev/shm") as scratch:
        path = os.path.join(scratch, "best.pt")
        atomic_write(path, lambda f: f.write(b"first"))
        atomic_write(path, lambda f: f.write(b"second"))
        assert open(path, "rb").read() == b"second" and not streams_in_place(path)
