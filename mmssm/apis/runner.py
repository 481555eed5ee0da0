"""What tools/train.py and tools/test.py share: the common command-line options, the config with
those applied, and an mmengine Runner for the config's task (mmseg or mmdet, from default_scope)."""
import importlib
import os
import os.path as osp
import sys

import torch
from mmengine.config import Config, DictAction
from mmengine.runner import Runner

from .data_check import check_data, check_weights

TASKS = ('mmseg', 'mmdet')


def parse_args(parser):
    """Adds the options both tools take to ``parser`` and parses the command line."""
    parser.add_argument('--work-dir', help='where logs, checkpoints and metrics go '
                        '(default: work_dirs/<config name>)')
    parser.add_argument(
        '--cfg-options', nargs='+', action=DictAction,
        help='override config settings, key=value (nested keys with dots, lists as "[a,b]")')
    parser.add_argument('--launcher', choices=['none', 'pytorch', 'slurm'], default='none')
    # torch.distributed.launch passes --local-rank (torch >= 2) or --local_rank; torchrun neither
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    args = parser.parse_args()
    os.environ.setdefault('LOCAL_RANK', str(args.local_rank))
    return args


def task_of(cfg):
    scope = cfg.get('default_scope')
    if scope not in TASKS:
        sys.exit(f"error: the config's default_scope is {scope!r}; expected one of {TASKS}")
    return scope


def load_config(args):
    """The config file with --cfg-options, --work-dir and --launcher applied."""
    cfg = Config.fromfile(args.config)
    cfg.launcher = args.launcher
    if args.cfg_options:
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
    if cfg.launcher != 'pytorch':
        sys.exit('error: without a GPU only --launcher pytorch (torchrun, tools/dist_*.sh) works')
    if not torch.distributed.is_initialized():
        torch.distributed.init_process_group('gloo')
    wrapper = cfg.get('model_wrapper_cfg') or dict(
        type='MMDistributedDataParallel', broadcast_buffers=False,
        find_unused_parameters=cfg.get('find_unused_parameters', False))
    cfg.model_wrapper_cfg = dict(wrapper, device_ids=None)
    _sync_bn_to_bn(cfg.model)


def build_runner(cfg, loaders):
    """The Runner for ``cfg``, after checking that the data of ``loaders`` and the checkpoints
    it loads are there."""
    try:
        check_data(cfg, loaders)
        check_weights(cfg)
    except FileNotFoundError as error:
        sys.exit(f'error: {error}')
    if cfg.launcher != 'none' and not torch.cuda.is_available():
        _setup_cpu_distributed(cfg)
    if 'runner_type' in cfg:
        return importlib.import_module(f'{task_of(cfg)}.registry').RUNNERS.build(cfg)
    return Runner.from_cfg(cfg)
