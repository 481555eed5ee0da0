"""What tools/train.py and tools/test.py share: the common command-line options, the config with
those applied, and an mmengine Runner for the config's task (mmseg or mmdet, from default_scope)."""
import contextlib
import importlib
import os
import os.path as osp
import sys

import torch
from mmengine.config import Config, DictAction
from mmengine.runner import Runner

from mmssm.checkpoints import CheckpointError, add_trust_option
from mmssm.datasets import SEEDED_SAMPLERS
from mmssm.datasets.checks import DataError

from .config_check import ConfigError, check_checkpoint_hook, check_lengths, check_options
from .data_check import (add_image_checks, check_data, check_samples, check_weights,
                         leaf_datasets)
from .distributed import (COLLECTIVE_TIMEOUT_S, init_cpu_process_group, lost_ranks_message,
                          watch_ranks)

# errors in what the user fed the tool: reported as one line, without a traceback
USER_ERRORS = (CheckpointError, ConfigError, DataError)

TASKS = ('mmseg', 'mmdet')


def parse_args(parser):
    """Adds the options both tools take to ``parser`` and parses the command line."""
    parser.add_argument('--work-dir', help='where logs, checkpoints and metrics go '
                        '(default: work_dirs/<config name>)')
    parser.add_argument(
        '--cfg-options', nargs='+', action=DictAction,
        help='override config settings, key=value (nested keys with dots, lists as "[a,b]")')
    add_trust_option(parser)
    parser.add_argument('--launcher', choices=['none', 'pytorch', 'slurm'], default='none')
    # torch.distributed.launch passes --local-rank (torch >= 2) or --local_rank; torchrun neither
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    args = parser.parse_args()
    os.environ.setdefault('LOCAL_RANK', str(args.local_rank))
    return args


@contextlib.contextmanager
def user_errors_reported():
    """Turns an error in the user's input, or a rank that stopped answering, into one line and
    exit code 1. An error raised in a data-loader worker comes back with the worker's traceback in
    its message: only its last line is shown."""
    try:
        yield
    except USER_ERRORS as error:
        message = str(error)
        if 'Traceback' in message:
            message = message.strip().splitlines()[-1].split(': ', 1)[-1]
        sys.exit(f'error: {message}')
    except RuntimeError as error:
        message = lost_ranks_message(error)
        if message is None:
            raise
        sys.exit(message)


def task_of(cfg):
    scope = cfg.get('default_scope')
    if scope not in TASKS:
        sys.exit(f"error: the config's default_scope is {scope!r}; expected one of {TASKS}")
    return scope


def load_config(args):
    """The config file with --cfg-options, --work-dir and --launcher applied."""
    if not osp.isfile(args.config):
        sys.exit(f'error: config file not found: {args.config}')
    cfg = Config.fromfile(args.config)
    cfg.launcher = args.launcher
    if args.cfg_options:
        try:
            check_options(cfg, args.cfg_options)
        except ConfigError as error:
            sys.exit(f'error: {error}')
        cfg.merge_from_dict(args.cfg_options)
    cfg.work_dir = args.work_dir or cfg.get('work_dir') or osp.join(
        'work_dirs', osp.splitext(osp.basename(args.config))[0])
    task_of(cfg)
    return cfg


def _sync_bn_to_bn(node):
    if isinstance(node, dict):
        if node.get('type') == 'SyncBN':
            node['type'] = 'BN'
        for value in node.values():
            _sync_bn_to_bn(value)
    elif isinstance(node, (list, tuple)):
        for value in node:
            _sync_bn_to_bn(value)


def _setup_cpu_distributed(cfg):
    """Prepares a distributed run on a machine without a GPU.

    mmengine's init_dist pins a CUDA device and its DDP wrapper passes device_ids, and SyncBN only
    runs on GPUs: so a gloo process group is created here (the Runner then uses it instead of making
    its own), the model is wrapped without device_ids and SyncBN becomes per-process BN.
    """
    init_cpu_process_group(cfg.launcher, cfg.env_cfg.dist_cfg.timeout)
    wrapper = cfg.get('model_wrapper_cfg') or dict(
        type='MMDistributedDataParallel', broadcast_buffers=False,
        find_unused_parameters=cfg.get('find_unused_parameters', False))
    cfg.model_wrapper_cfg = dict(wrapper, device_ids=None)
    _sync_bn_to_bn(cfg.model)


def _check_segmentation_labels(cfg, loaders):
    """Puts CheckSegAnnotation after each LoadAnnotations of the loaders' pipelines."""
    head = cfg.model.get('decode_head') or {}
    head = head[-1] if isinstance(head, (list, tuple)) else head
    check = dict(type='CheckSegAnnotation', num_classes=head.get('num_classes'),
                 ignore_index=head.get('ignore_index', 255))
    for loader in loaders:
        for leaf in leaf_datasets(cfg[loader]['dataset']) if cfg.get(loader) else []:
            pipeline = leaf.get('pipeline') or []
            types = [step.get('type') for step in pipeline]
            if 'LoadAnnotations' in types and 'CheckSegAnnotation' not in types:
                pipeline.insert(types.index('LoadAnnotations') + 1, check)


def build_runner(cfg, loaders):
    """The Runner for ``cfg``, after checking that the data of ``loaders`` (and the checkpoints
    it loads) are there and whole; a run without training never reads the backbone's pretrained
    file. Its segmentation pipelines check each label map as it loads, its checkpoints are checked
    against the model before loading, a resumed training continues exactly, and its hooks and
    optimizer are built and checked before it returns."""
    training = 'train_dataloader' in loaders
    check_lengths(cfg, loaders)
    try:
        check_data(cfg, loaders)
        check_weights(cfg, pretrained=training)
        check_samples(cfg, loaders)
    except (FileNotFoundError, DataError) as error:
        sys.exit(f'error: {error}')
    add_image_checks(cfg, loaders)
    if task_of(cfg) == 'mmseg':
        _check_segmentation_labels(cfg, loaders)
    # testing and resuming need every tensor of the model; fine-tuning most of them
    hooks = [dict(type='CheckpointFitHook', strict=not training or bool(cfg.get('resume')))]
    if training:
        hooks.append(dict(type='ExactResumeHook'))
        sampler = cfg.train_dataloader.get('sampler') or {}
        seeded = SEEDED_SAMPLERS.get(str(sampler.get('type')).replace('mmengine.', ''))
        if seeded:
            sampler['type'] = seeded
    cfg.custom_hooks = list(cfg.get('custom_hooks') or []) + hooks
    if cfg.launcher != 'none':
        # torch's default (30 min) leaves a run blocked by a stopped rank silent for that long
        cfg.env_cfg.setdefault('dist_cfg', {}).setdefault('timeout', COLLECTIVE_TIMEOUT_S)
        if not torch.cuda.is_available():
            _setup_cpu_distributed(cfg)
    if 'runner_type' in cfg:
        runner = importlib.import_module(f'{task_of(cfg)}.registry').RUNNERS.build(cfg)
    else:
        runner = Runner.from_cfg(cfg)
    watch_ranks()
    if training:
        check_checkpoint_hook(runner)
        # built now (Runner.train keeps a built one), so that a wrong optimizer setting stops the
        # run before any data is loaded
        try:
            runner.optim_wrapper = runner.build_optim_wrapper(runner.optim_wrapper)
        except (TypeError, KeyError) as error:  # an argument or type the optimizer does not have
            raise ConfigError(f'optim_wrapper: {error}') from error
    return runner
