"""Checks, before anything is built, that the folders and files a config's data loaders read and
the checkpoints it loads are there, so that a missing data set or weight file is one clear line
instead of a traceback from deep inside a dataset, a data-loader worker or a model's init."""
import os.path as osp

# the synthetic stand-in (python -m mmssm.datasets.synthetic KIND) for each task's data sets
SYNTHETIC_KIND = {'mmseg': 'ade20k', 'mmdet': 'coco'}


def _leaf_datasets(dataset):
    """The dataset configs that read files, looking through wrappers such as RepeatDataset and
    ConcatDataset."""
    if 'datasets' in dataset:
        for child in dataset['datasets']:
            yield from _leaf_datasets(child)
    elif 'dataset' in dataset:
        yield from _leaf_datasets(dataset['dataset'])
    else:
        yield dataset


def _paths(dataset):
    root = dataset.get('data_root') or ''
    relative = [p for p in (dataset.get('data_prefix') or {}).values() if p]
    if dataset.get('ann_file'):
        relative.append(dataset['ann_file'])
    return ([root] if root else []) + [osp.join(root, p) for p in relative]


def _evaluator_paths(evaluator):
    metrics = evaluator if isinstance(evaluator, (list, tuple)) else [evaluator]
    return [m['ann_file'] for m in metrics if m and m.get('ann_file')]


def check_data(cfg, loaders):
    """Raises FileNotFoundError naming the first missing path that one of ``loaders`` (e.g.
    'train_dataloader') or its evaluator needs, and how to get the data."""
    for loader in loaders:
        if not cfg.get(loader):
            continue
        leaves = list(_leaf_datasets(cfg[loader]['dataset']))
        paths = [p for leaf in leaves for p in _paths(leaf)]
        paths += _evaluator_paths(cfg.get(loader.replace('_dataloader', '_evaluator')) or [])
        for path in paths:
            # remote storage (s3://, ...) is left to its file backend
            if '://' in path or osp.exists(path):
                continue
            root = leaves[0].get('data_root') or osp.dirname(path)
            kind = SYNTHETIC_KIND.get(cfg.get('default_scope'), '{ade20k,coco}')
            raise FileNotFoundError(
                f"data not found: '{path}' (read by {loader}). Put the data set there, point the "
                f'config at it (--cfg-options {loader}.dataset.data_root=...), or, to try the '
                f'tools without it, make a synthetic stand-in of the same layout: '
                f'python -m mmssm.datasets.synthetic {kind} --out {root}')


def _pretrained(node, where):
    """(config key, checkpoint) of every init_cfg=dict(type='Pretrained', ...) below ``node``."""
    if isinstance(node, dict):
        if node.get('type') == 'Pretrained' and node.get('checkpoint'):
            yield where, node['checkpoint']
        for key, value in node.items():
            yield from _pretrained(value, f'{where}.{key}')
    elif isinstance(node, (list, tuple)):
        for i, value in enumerate(node):
            yield from _pretrained(value, f'{where}[{i}]')


def check_weights(cfg):
    """Raises FileNotFoundError naming a local checkpoint the config loads (``load_from``, or a
    Pretrained init_cfg) that is not there."""
    wanted = list(_pretrained(cfg.get('model'), 'model'))
    if cfg.get('load_from'):
        wanted.append(('load_from', cfg.load_from))
    for key, path in wanted:
        if '://' in str(path) or osp.isfile(path):
            continue
        hint = 'check the path' if key == 'load_from' else (
            f'download the official weights there, or train from scratch with --cfg-options '
            f'{key}=None')
        raise FileNotFoundError(f"checkpoint not found: '{path}' ({key}): {hint}")
