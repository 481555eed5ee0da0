"""A file backend for checkpoints that appear whole or not at all, chosen in the config:
``default_hooks.checkpoint.backend_args=dict(backend='atomic_checkpoint')``.

mmengine writes a checkpoint straight to its final name, so a run killed while saving leaves a
truncated ``iter_N.pth`` that ``--resume`` then picks. Here a checkpoint is written to a temporary
name beside its target and renamed over it, so it is complete whenever it exists under its name.
Only the writes of the CheckpointHook (checkpoints, ``last_checkpoint``) go through it: it is
registered by name, not for a path prefix, so every other write of the process stays mmengine's.
"""
import contextlib
import os
import os.path as osp
import socket
import stat

from mmengine.fileio import LocalBackend, register_backend

# temporary files are named <target>.tmp-<host>-<pid>, so that leftovers of a killed process can be
# told from the files of a live one
TMP = '.tmp-'


class CheckpointWriteError(OSError):
    """A checkpoint that could not be written (disk full, no permission, not a regular file)."""


def _remove_leftovers(folder):
    """Removes the temporary files that processes of this host killed while saving left behind."""
    host = socket.gethostname()
    for name in os.listdir(folder):
        owner = name.rpartition(TMP)[2]
        writer, _, pid = owner.rpartition('-')
        if TMP not in name or writer != host or not pid.isdigit() or int(pid) == os.getpid():
            continue
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:  # the writer is gone: the file is a leftover
            with contextlib.suppress(FileNotFoundError):
                os.remove(osp.join(folder, name))
        except PermissionError:  # another user's live process
            pass


class AtomicCheckpointBackend(LocalBackend):
    """LocalBackend whose writes go to a temporary file renamed over the target. The target keeps
    its mode, a symlink's target is what gets written, and a path that is not a regular file
    (a device, a folder) is refused."""

    def put(self, obj, filepath):
        # a symlink is followed: its target is replaced, the link stays
        target = osp.realpath(str(filepath))
        folder = osp.dirname(target)
        os.makedirs(folder, exist_ok=True)
        mode = None
        if osp.lexists(target):
            info = os.stat(target)
            if not stat.S_ISREG(info.st_mode):
                raise CheckpointWriteError(
                    f'cannot save checkpoint {filepath}: it exists and is not a regular file '
                    f'(a device, a folder, ...): move it away or save elsewhere (--work-dir)')
            mode = stat.S_IMODE(info.st_mode)
        _remove_leftovers(folder)
        temporary = f'{target}{TMP}{socket.gethostname()}-{os.getpid()}'
        try:
            with open(temporary, 'wb') as f:
                if mode is not None:
                    os.fchmod(f.fileno(), mode)
                f.write(obj)
                f.flush()
                os.fsync(f.fileno())
            os.replace(temporary, target)
        except OSError as error:
            raise CheckpointWriteError(
                f'cannot save checkpoint {filepath}: {error.strerror or error} (the checkpoints '
                f'saved before are intact)') from error
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.remove(temporary)

    def put_text(self, obj, filepath, encoding='utf-8'):
        self.put(obj.encode(encoding), filepath)


register_backend('atomic_checkpoint', AtomicCheckpointBackend)
