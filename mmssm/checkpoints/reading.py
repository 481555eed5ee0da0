"""Reading checkpoint files without running code from them.

``torch.load`` unpickles: a file can make it call any Python function. With ``weights_only=True``
it only builds tensors, containers and the types allowed below; mmengine's loaders try that and
then silently retry without it, and its URL loaders (through ``torch.hub``) do not even try.
Every checkpoint mmssm reads (``init_cfg`` Pretrained, ``load_from``, ``--resume``, tools/test.py,
the model converters) goes through :func:`read_checkpoint` instead, and :func:`secure_checkpoint_loading` (called by ``import mmssm``)
makes :func:`read_weights_only` the reader behind every scheme mmengine's CheckpointLoader knows
(local files, http(s)://, torchvision://, open-mmlab://, mmcls://, s3://, petrel://, pavi://):
those schemes only fetch the bytes. A file that needs more than weights stops with its name and how to
opt in for a trusted file.
"""
import argparse
import contextlib
import io
import os
import os.path as osp
import pathlib
import pickle
import re
import tempfile
import urllib.parse

import numpy as np
import torch
from mmengine.config import ConfigDict
from mmengine.dist import get_dist_info
from mmengine.fileio import get_file_backend
from mmengine.logging import HistoryBuffer, print_log
from mmengine.runner import CheckpointLoader
from mmengine.runner import checkpoint as mmengine_checkpoint

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
# Other data-only types mmengine's loader reads: its ConfigDict, frozenset, slice, paths, numpy
# arrays and scalars of any dtype but structured ones (a structured dtype's state may lay an
# object field over an integer one), also as numpy 1.x named their constructors. An object
# array's items are unpickled by the same rules. Every entry builds data only, calls no code.
SAFE_GLOBALS = [
    argparse.Namespace,
    HistoryBuffer,
    (_history_buffer_method, 'builtins.getattr'),
    ConfigDict,
    frozenset,
    slice,
    pathlib.PurePosixPath,
    pathlib.PosixPath,
    pathlib.PureWindowsPath,
    np.ndarray,
    np.dtype,
    np._core.multiarray._reconstruct,
    np._core.multiarray.scalar,
    (np._core.multiarray._reconstruct, 'numpy.core.multiarray._reconstruct'),
    (np._core.multiarray.scalar, 'numpy.core.multiarray.scalar'),
    *(getattr(np.dtypes, name) for name in np.dtypes.__all__
      if name not in ('VoidDType', 'StringDType')),
]


class CheckpointError(RuntimeError):
    """A checkpoint file that cannot be read, or that would need code to be read."""


TRUE_WORDS, FALSE_WORDS = ('1', 'true', 'yes'), ('', '0', 'false', 'no')


def trusted():
    """Whether TRUST_ENV says to load checkpoints fully: only an explicit true value does; a value
    that is neither true nor false is an error rather than a guess."""
    value = os.environ.get(TRUST_ENV, '')
    word = value.strip().lower()
    if word in TRUE_WORDS or word in FALSE_WORDS:
        return word in TRUE_WORDS
    raise ValueError(f'{TRUST_ENV}={value!r} is neither true ({", ".join(TRUE_WORDS)}) nor false '
                     f'({", ".join(repr(w) for w in FALSE_WORDS)}): set one of those, or unset it')


def add_trust_option(parser):
    """``--trust-checkpoints`` for a command-line tool: sets TRUST_ENV for the process. A TRUST_ENV
    that is neither true nor false stops the tool here, before it does anything."""

    class Trust(argparse.Action):

        def __call__(self, parser, namespace, values, option_string=None):
            os.environ[TRUST_ENV] = '1'

    parser.add_argument(
        '--trust-checkpoints', nargs=0, action=Trust,
        help='load checkpoints that hold Python objects besides weights (unpickling them can run '
        'code from the file): only for files you trust')
    try:
        trusted()
    except ValueError as error:
        parser.exit(1, f'error: {error}\n')


def _unsafe_globals(file):
    """The non-allowed globals a zip-format checkpoint names (none for another file)."""
    try:
        if hasattr(file, 'seek'):
            file.seek(0)
        names = torch.serialization.get_unsafe_globals_in_checkpoint(file)
    except Exception:  # not a zip checkpoint: legacy format, ...
        return []
    allowed = {g[1] if isinstance(g, tuple) else f'{g.__module__}.{g.__qualname__}'
               for g in SAFE_GLOBALS}
    return sorted(n for n in names if n not in allowed)  # torch lists them in no fixed order


def read_checkpoint(path, map_location='cpu'):
    """The object in checkpoint ``path``: a local file, or a URL-like path for mmengine's other
    schemes (http://, s3://, ...)."""
    return CheckpointLoader.load_checkpoint(str(path), map_location)


def read_weights_only(file, name, map_location=None):
    """The checkpoint in ``file`` (a path or a binary file object) loaded weights-only (tensors,
    containers, numbers, strings and the few mmengine/numpy types of SAFE_GLOBALS) unless the user
    trusts it; ``name`` is what the messages call it."""
    if trusted():
        return torch.load(file, map_location=map_location, weights_only=False)
    try:
        with torch.serialization.safe_globals(SAFE_GLOBALS):
            return torch.load(file, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as error:
        message = str(error)
        # torch words it 'Unsupported global: GLOBAL exec was not an allowed global' or, for
        # os, posix, sys, nt: 'unsupported GLOBAL posix.system whose module posix is blocked'
        refused = re.search(r'GLOBAL (\S+) (was not an allowed|whose module)', message)
        if refused:
            names = _unsafe_globals(file) or [refused.group(1)]  # a legacy file: the first one
            raise CheckpointError(
                f'refusing to load checkpoint {name}: besides weights it holds Python objects '
                f'({", ".join(names[:5])}) that a weights-only read does not build, as '
                f'unpickling them can run code from the file. {TRUST_HINT}.') from None
        # an object of an allowed type used in a way the weights-only unpickler does not
        # allow; not bytes that are no pickle ('Unsupported operand')
        reason = re.search(r'(Can only|Trying to call|Unsupported getattr)[^\n]*', message)
        if reason:
            raise CheckpointError(f'cannot load checkpoint {name} weights-only: '
                                  f'{reason.group(0).rstrip(".")}. {TRUST_HINT}.') from None
        # torch's text before the unpickler's own words is advice on trust: left out
        words = message.split('WeightsUnpickler error:')[-1].strip().splitlines()
        reason = f'UnpicklingError: {words[0] if words else message}'
    except Exception as error:  # torch.load reads nothing but the file: the file is at fault
        reason = f'{type(error).__name__}: {str(error).strip().splitlines()[0]}'
    raise CheckpointError(f'cannot read checkpoint {name}: it is truncated, damaged or not a '
                          f'PyTorch checkpoint ({reason})')


def load_from_local_weights_only(path, map_location=None, name=None):
    """A local checkpoint file, read by :func:`read_weights_only`."""
    path = osp.expanduser(path)
    name = name or path
    if not osp.isfile(path):
        raise FileNotFoundError(f'checkpoint not found: {name}')
    if osp.getsize(path) == 0:
        raise CheckpointError(f'cannot read checkpoint {name}: the file is empty (0 bytes)')
    return read_weights_only(path, name, map_location)


def _hub_cache_path(url):
    """Where torch.hub.load_state_dict_from_url keeps the file of ``url``, downloaded if not
    there yet."""
    folder = osp.join(torch.hub.get_dir(), 'checkpoints')
    path = osp.join(folder, osp.basename(urllib.parse.urlparse(url).path))
    if not osp.exists(path):
        os.makedirs(folder, exist_ok=True)
        torch.hub.download_url_to_file(url, path)
    return path


def load_from_url_weights_only(url, map_location=None):
    """http(s)://: the file is downloaded into torch's hub cache as mmengine's loader does (by
    rank 0 first, in a distributed run), then read weights-only."""
    rank, world_size = get_dist_info()
    if rank == 0:
        _hub_cache_path(url)
    if world_size > 1:
        torch.distributed.barrier()
    path = _hub_cache_path(url)
    return load_from_local_weights_only(path, map_location, name=f'{url} (cached as {path})')


def load_from_model_zoo_weights_only(filename, map_location=None):
    """torchvision://, modelzoo://, open-mmlab://, openmmlab://, mmcls://: a model name that
    mmengine's lists map to a URL (or to a file under mmengine's home)."""
    scheme, model = filename.split('://', 1)
    if scheme in ('torchvision', 'modelzoo'):
        urls = mmengine_checkpoint.get_torchvision_models()
    elif scheme == 'mmcls':
        urls = mmengine_checkpoint.get_mmcls_models()
    else:
        urls = mmengine_checkpoint.get_external_models()
        model = mmengine_checkpoint.get_deprecated_model_names().get(model, model)
    if model not in urls:
        raise CheckpointError(f'cannot load checkpoint {filename}: {scheme}:// has no model '
                              f'{model!r}')
    url = urls[model]
    if url.startswith(('http://', 'https://')):
        ckpt = load_from_url_weights_only(url, map_location)
    else:
        ckpt = load_from_local_weights_only(
            osp.join(mmengine_checkpoint._get_mmengine_home(), url), map_location)
    return mmengine_checkpoint._process_mmcls_checkpoint(ckpt) if scheme == 'mmcls' else ckpt


def load_from_ceph_weights_only(filename, map_location=None):
    """s3://, petrel:// (with or without a ``cluster:`` before them): bytes from the petrel
    backend."""
    data = get_file_backend(filename, backend_args={'backend': 'petrel'}).get(filename)
    return read_weights_only(io.BytesIO(data), filename, map_location)


def load_from_pavi_weights_only(filename, map_location=None):
    """pavi://: a file downloaded from pavi's model cloud."""
    from pavi import modelcloud
    model = modelcloud.get(filename[len('pavi://'):])
    with tempfile.TemporaryDirectory() as folder:
        path = osp.join(folder, model.name)
        model.download(path)
        return load_from_local_weights_only(path, map_location, name=filename)


# Every scheme mmengine's CheckpointLoader knows (its prefixes are regular expressions matched
# longest first; '' is the local-file fallback): mmengine's Runner (load_from, resume), its
# Pretrained init and read_checkpoint reach every file through one of these.
WEIGHTS_ONLY_SCHEMES = {
    '': load_from_local_weights_only,
    ('http://', 'https://'): load_from_url_weights_only,
    ('torchvision://', 'modelzoo://', 'open-mmlab://', 'openmmlab://', 'mmcls://'):
        load_from_model_zoo_weights_only,
    (r'(\S+\:)?s3://', r'(\S+\:)?petrel://'): load_from_ceph_weights_only,
    'pavi://': load_from_pavi_weights_only,
}
# the same, one prefix a key
WEIGHTS_ONLY_LOADERS = {prefix: loader for prefixes, loader in WEIGHTS_ONLY_SCHEMES.items()
                        for prefix in ((prefixes,) if isinstance(prefixes, str) else prefixes)}
SECURE_LOADING_ENV = 'MMSSM_SECURE_LOADING'
# mmengine's own loaders, put back when process-wide secure loading is switched off
# (None: a prefix mmengine has no loader of its own for)
_MMENGINE_LOADERS = {prefix: CheckpointLoader._schemes.get(prefix)
                     for prefix in WEIGHTS_ONLY_LOADERS}


def _register(loaders):
    for prefix, loader in loaders.items():
        if loader is None:
            CheckpointLoader._schemes.pop(prefix, None)
        else:
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
    saved = {prefix: CheckpointLoader._schemes.get(prefix) for prefix in WEIGHTS_ONLY_LOADERS}
    _register(WEIGHTS_ONLY_LOADERS)
    try:
        yield
    finally:
        _register(saved)
