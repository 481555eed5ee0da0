"""Reading checkpoint files without running code from them.

``torch.load`` unpickles: a file can make it call any Python function. With ``weights_only=True``
it only builds tensors, containers and the types allowed below; mmengine's loader tries that and
then silently retries without it. Every checkpoint mmssm reads (``init_cfg`` Pretrained,
``load_from``, ``--resume``, tools/test.py, the model converters) goes through
:func:`read_checkpoint` instead, which :func:`secure_checkpoint_loading` makes mmengine's loader.
A file that needs more than weights stops with its name and how to opt in for a trusted file.
"""
import argparse
import contextlib
import os
import os.path as osp
import pickle
import re

import numpy as np
import torch
from mmengine.logging import HistoryBuffer, print_log
from mmengine.runner import CheckpointLoader

TRUST_ENV = 'MMSSM_TRUST_CHECKPOINTS'
TRUST_HINT = (f'If you trust the file and where it came from, load it anyway with '
              f'--trust-checkpoints (tools/train.py, tools/test.py, the model converters) or '
              f'{TRUST_ENV}=1 in the environment')


def _history_buffer_method(owner, name):
    """The one ``getattr`` a checkpoint may call: mmengine's HistoryBuffer pickles its statistics
    methods as ``getattr(HistoryBuffer, 'mean')``. A free getattr would reach any attribute."""
    # the class registers its built-in statistics only when a first buffer is made
    statistics = {'min', 'max', 'current', 'mean', *HistoryBuffer._statistics_methods}
    if owner is HistoryBuffer and name in statistics:
        return getattr(owner, name)
    raise pickle.UnpicklingError(f'Unsupported getattr({owner!r}, {name!r}) in a checkpoint')


# What mmengine's own checkpoints hold besides tensors and containers: the message hub's
# HistoryBuffer (numpy arrays inside) and numpy scalars in its runtime info; and the training
# script's arguments that DeiT-style scripts (hustvl/Vim's main.py among them) save as 'args'.
SAFE_GLOBALS = [
    argparse.Namespace,
    HistoryBuffer,
    (_history_buffer_method, 'builtins.getattr'),
    np.ndarray,
    np.dtype,
    np._core.multiarray._reconstruct,
    np._core.multiarray.scalar,
    # the dtype classes numpy arrays and scalars are rebuilt with
    *{type(np.dtype(t)) for t in (np.bool_, np.int8, np.int16, np.int32, np.int64, np.uint8,
                                  np.uint16, np.uint32, np.uint64, np.float16, np.float32,
                                  np.float64)},
]


class CheckpointError(RuntimeError):
    """A checkpoint file that cannot be read, or that would need code to be read."""


def trusted():
    return os.environ.get(TRUST_ENV, '') not in ('', '0')


def add_trust_option(parser):
    """``--trust-checkpoints`` for a command-line tool: sets TRUST_ENV for the process."""

    class Trust(argparse.Action):

        def __call__(self, parser, namespace, values, option_string=None):
            os.environ[TRUST_ENV] = '1'

    parser.add_argument(
        '--trust-checkpoints', nargs=0, action=Trust,
        help='load checkpoints that hold Python objects besides weights (unpickling them can run '
        'code from the file): only for files you trust')


def _unsafe_globals(path):
    """The non-allowed globals a zip-format checkpoint names (none for another file)."""
    try:
        names = torch.serialization.get_unsafe_globals_in_checkpoint(path)
    except Exception:  # not a zip checkpoint: legacy format, ...
        return []
    allowed = {g[1] if isinstance(g, tuple) else f'{g.__module__}.{g.__qualname__}'
               for g in SAFE_GLOBALS}
    return [n for n in names if n not in allowed]


def read_checkpoint(path, map_location='cpu'):
    """The object in checkpoint ``path``: a local file, or a URL-like path for mmengine's other
    schemes (http://, s3://, ...)."""
    return CheckpointLoader.load_checkpoint(str(path), map_location)


def load_from_local_weights_only(path, map_location=None):
    """A local checkpoint file loaded weights-only (tensors, containers, numbers, strings and the
    few mmengine/numpy types of SAFE_GLOBALS) unless the user trusts it."""
    path = osp.expanduser(path)
    if not osp.isfile(path):
        raise FileNotFoundError(f'checkpoint not found: {path}')
    if osp.getsize(path) == 0:
        raise CheckpointError(f'cannot read checkpoint {path}: the file is empty (0 bytes)')
    if trusted():
        return torch.load(path, map_location=map_location, weights_only=False)
    try:
        with torch.serialization.safe_globals(SAFE_GLOBALS):
            return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as error:
        message = str(error)
        refused = re.search(r'Unsupported global: GLOBAL (\S+)', message)
        if refused:
            names = _unsafe_globals(path) or [refused.group(1)]  # a legacy file: the first one
            raise CheckpointError(
                f'refusing to load checkpoint {path}: besides weights it holds Python objects '
                f'({", ".join(names[:5])}) whose unpickling can run code from the file. '
                f'{TRUST_HINT}.') from None
        lines = [line.strip() for line in message.splitlines() if line.strip()]
        reason = next((line for line in lines if line.startswith(('Can only', 'Unsupported'))),
                      lines[0])
        # an object the weights-only unpickler will not build; not bytes that are no pickle
        if reason.startswith(('Can only', 'Unsupported')) and 'operand' not in reason:
            raise CheckpointError(f'cannot load checkpoint {path} weights-only: {reason}. '
                                  f'{TRUST_HINT}.') from None
    except Exception as error:  # torch.load reads nothing but the file: the file is at fault
        reason = f'{type(error).__name__}: {str(error).strip().splitlines()[0]}'
    raise CheckpointError(f'cannot read checkpoint {path}: it is truncated, damaged or not a '
                          f'PyTorch checkpoint ({reason})')


# the scheme prefixes mmssm reads weights-only, and its loader for each
WEIGHTS_ONLY_LOADERS = {'': load_from_local_weights_only}
SECURE_LOADING_ENV = 'MMSSM_SECURE_LOADING'
# mmengine's own loaders, put back when process-wide secure loading is switched off
_MMENGINE_LOADERS = {prefix: CheckpointLoader._schemes[prefix] for prefix in WEIGHTS_ONLY_LOADERS}


def _register(loaders):
    for prefix, loader in loaders.items():
        CheckpointLoader.register_scheme(prefixes=prefix, loader=loader, force=True)


def secure_checkpoint_loading(enable=True):
    """Makes mmengine's CheckpointLoader read checkpoints weights-only for the whole process
    (``enable=False`` puts mmengine's own loaders back).

    ``import mmssm`` calls it, unless ``MMSSM_SECURE_LOADING=0`` is set: so that every way a config
    of ours loads a checkpoint reads weights only, including the ways that do not go through
    mmssm's Runner: mmseg's ``init_model`` / ``MMSegInferencer``, mmdet's ``init_detector`` /
    ``DetInferencer``, mmengine's ``load_checkpoint`` and a plain ``Runner``. It changes nothing
    else: mmssm's Runner reads weights-only with it switched off too
    (:func:`weights_only_checkpoints`).
    """
    _register(WEIGHTS_ONLY_LOADERS if enable else _MMENGINE_LOADERS)
    print_log(f'mmssm: checkpoints are read weights-only process-wide ({TRUST_ENV}=1 to trust '
              f'a file, {SECURE_LOADING_ENV}=0 before import or '
              f'mmssm.secure_checkpoint_loading(False) to switch this off)' if enable else
              'mmssm: process-wide weights-only checkpoint reading switched off',
              logger='current')


@contextlib.contextmanager
def weights_only_checkpoints():
    """mmssm's weights-only loaders for the duration, whatever the process-wide setting."""
    saved = {prefix: CheckpointLoader._schemes[prefix] for prefix in WEIGHTS_ONLY_LOADERS}
    _register(WEIGHTS_ONLY_LOADERS)
    try:
        yield
    finally:
        _register(saved)
