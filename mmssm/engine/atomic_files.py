"""Files that mmengine writes (checkpoints, configs, logs' JSON) appear whole or not at all.

mmengine writes a checkpoint straight to its final name, so a run killed while saving leaves a
truncated ``iter_N.pth`` that ``--resume`` then picks. Written to a temporary name in the same
folder and renamed, a file is complete whenever it exists under its name.
"""
import os
import os.path as osp

from mmengine.fileio import LocalBackend, register_backend


class AtomicLocalBackend(LocalBackend):

    def put(self, obj, filepath):
        filepath = str(filepath)
        os.makedirs(osp.dirname(filepath) or '.', exist_ok=True)
        temporary = f'{filepath}.tmp-{os.getpid()}'
        try:
            with open(temporary, 'wb') as f:
                f.write(obj)
                f.flush()
                os.fsync(f.fileno())
            os.replace(temporary, filepath)
        finally:
            if osp.exists(temporary):
                os.remove(temporary)

    def put_text(self, obj, filepath, encoding='utf-8'):
        self.put(obj.encode(encoding), filepath)


register_backend('local', AtomicLocalBackend, force=True, prefixes='')
