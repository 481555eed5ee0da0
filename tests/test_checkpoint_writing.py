"""Checkpoints written through the config's CheckpointHook backend (``backend_args=dict(
backend='atomic_checkpoint')``) appear whole or not at all, write through symlinks, keep the
target's mode, refuse what is not a regular file and leave no temporary file behind; every other
write of the process stays mmengine's."""
import errno
import os
import socket
import stat
import subprocess
import sys

import mmengine
import pytest
import torch
from mmengine.fileio import LocalBackend, get_file_backend
from mmengine.runner.checkpoint import save_checkpoint

from mmssm.apis import user_errors_reported
from mmssm.checkpoints import AtomicCheckpointBackend, CheckpointWriteError, read_checkpoint

ATOMIC = dict(backend='atomic_checkpoint')


def save(path, value):
    """What the Runner's CheckpointHook does with the configs' backend_args."""
    save_checkpoint({'state_dict': {'w': torch.full((3, ), float(value))}}, str(path),
                    backend_args=ATOMIC)


def weight(path):
    return read_checkpoint(path)['state_dict']['w'][0].item()


def test_the_configs_name_the_backend_and_nothing_else_changes(tmp_path):
    assert isinstance(get_file_backend(str(tmp_path), backend_args=ATOMIC),
                      AtomicCheckpointBackend)
    # mmssm is imported: other writes still go through mmengine's own backend
    assert type(get_file_backend(str(tmp_path / 'x.json'))) is LocalBackend
    target = tmp_path / 'target.json'
    target.write_text('{}')
    target.chmod(0o600)
    link = tmp_path / 'link.json'
    link.symlink_to(target)
    mmengine.dump({'a': 1}, str(link))
    assert link.is_symlink() and mmengine.load(str(target)) == {'a': 1}
    assert stat.S_IMODE(target.stat().st_mode) == 0o600


def test_a_failed_write_leaves_the_earlier_checkpoint_and_no_temporary_file(tmp_path,
                                                                             monkeypatch):
    save(tmp_path / 'iter_1.pth', 1)

    def killed(fd):
        raise OSError('killed while saving')

    monkeypatch.setattr(os, 'fsync', killed)
    with pytest.raises(CheckpointWriteError):
        save(tmp_path / 'iter_2.pth', 2)
    with pytest.raises(CheckpointWriteError):
        save(tmp_path / 'iter_1.pth', 3)  # over an existing one
    assert sorted(os.listdir(tmp_path)) == ['iter_1.pth']
    assert weight(tmp_path / 'iter_1.pth') == 1


def test_disk_full_is_one_line_naming_the_file(tmp_path, monkeypatch):
    save(tmp_path / 'iter_1.pth', 1)
    import builtins

    from mmssm.checkpoints import writing

    class Full:
        """A file on a full disk: the first bytes fit, then the write fails."""

        def __init__(self, *args, **kwargs):
            self.file = builtins.open(*args, **kwargs)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.file.close()

        def fileno(self):
            return self.file.fileno()

        def write(self, data):
            self.file.write(data[:100])
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(writing, 'open', Full, raising=False)
    path = tmp_path / 'iter_2.pth'
    with pytest.raises(SystemExit) as exit_:
        with user_errors_reported():
            save(path, 2)
    assert str(exit_.value) == (f'error: cannot save checkpoint {path}: No space left on device '
                                f'(the checkpoints saved before are intact)')
    assert sorted(os.listdir(tmp_path)) == ['iter_1.pth']
    assert weight(tmp_path / 'iter_1.pth') == 1


def test_symlink_target_is_written_and_mode_kept(tmp_path):
    target = tmp_path / 'store' / 'latest.pth'
    target.parent.mkdir()
    save(target, 1)
    target.chmod(0o600)
    link = tmp_path / 'latest.pth'
    link.symlink_to(target)
    save(link, 2)
    assert link.is_symlink() and weight(target) == 2
    assert stat.S_IMODE(target.stat().st_mode) == 0o600


def test_what_is_not_a_regular_file_is_refused(tmp_path):
    device = tmp_path / 'iter_1.pth'
    device.symlink_to('/dev/null')
    with pytest.raises(CheckpointWriteError, match=f'cannot save checkpoint {device}: it exists '
                                                   f'and is not a regular file'):
        save(device, 1)
    assert stat.S_ISCHR(os.stat('/dev/null').st_mode)
    fifo = tmp_path / 'iter_2.pth'
    os.mkfifo(fifo)
    with pytest.raises(CheckpointWriteError, match='not a regular file'):
        save(fifo, 1)
    assert stat.S_ISFIFO(fifo.stat().st_mode)


def test_leftovers_of_a_killed_writer_are_removed(tmp_path):
    """A process killed while saving leaves its temporary file; the next save in that folder
    removes it, and leaves a live process's own alone."""
    host = socket.gethostname()
    killed = subprocess.Popen([sys.executable, '-c', 'import os, signal, sys; '
                               'open(sys.argv[1] + f".tmp-{sys.argv[2]}-{os.getpid()}", "wb")'
                               '.write(b"partial"); os.kill(os.getpid(), signal.SIGKILL)',
                               str(tmp_path / 'iter_3.pth'), host])
    killed.wait()
    leftover = tmp_path / f'iter_3.pth.tmp-{host}-{killed.pid}'
    assert leftover.exists()
    live = tmp_path / f'iter_3.pth.tmp-{host}-{os.getppid()}'
    live.write_bytes(b'being written')
    save(tmp_path / 'iter_4.pth', 4)
    assert sorted(os.listdir(tmp_path)) == ['iter_3.pth' + live.name[len('iter_3.pth'):],
                                            'iter_4.pth']
