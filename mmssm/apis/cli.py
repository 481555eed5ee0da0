"""What tools/train.py and tools/test.py share, as mmseg's scripts do it: the common options, the
config with them applied, and the Runner the config names (``runner_type``)."""
import os
import os.path as osp
import sys

from mmengine.config import Config, DictAction
from mmengine.registry import RUNNERS
from mmengine.runner import Runner

from mmssm.checkpoints import add_trust_option


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


def config_path(name):
    """The file of config ``name``: a path, or ``mmssm::NAME.py`` for a config shipped in the
    package (``mmssm/.mim/configs/``, as OpenMMLab packages ship theirs)."""
    package, _, relative = name.rpartition('::')
    if package == 'mmssm':
        name = osp.join(osp.dirname(osp.dirname(osp.abspath(__file__))), '.mim', 'configs',
                        relative)
    if not osp.isfile(name):
        sys.exit(f'error: config file not found: {name}')
    return name


def load_config(args):
    """The config file (a path, or ``mmssm::NAME.py``) with --cfg-options, --work-dir and
    --launcher applied."""
    cfg = Config.fromfile(config_path(args.config))
    cfg.launcher = args.launcher
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    cfg.work_dir = args.work_dir or cfg.get('work_dir') or osp.join(
        'work_dirs', osp.splitext(osp.basename(args.config))[0])
    return cfg


def build_runner(cfg):
    """The Runner of ``runner_type`` (mmssm's configs name CheckedRunner), as mmseg's and mmdet's
    train.py build it."""
    return RUNNERS.build(cfg) if 'runner_type' in cfg else Runner.from_cfg(cfg)
