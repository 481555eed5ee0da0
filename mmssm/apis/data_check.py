"""Checks, before anything is built, that the folders and files a config's data loaders read and
the checkpoints it loads are there and usable, so that a missing data set, a hole in it or a
missing weight file is one clear line instead of a traceback from deep inside a dataset, a
data-loader worker or a model's init."""
import importlib
import inspect
import json
import os
import os.path as osp

from mmengine.registry import DefaultScope

from mmssm.datasets.checks import DataError

SHOWN = 5
# the synthetic stand-in (python -m mmssm.datasets.synthetic KIND) for each task's data sets
SYNTHETIC_KIND = {'mmseg': 'ade20k', 'mmdet': 'coco'}


def leaf_datasets(dataset):
    """The dataset configs that read files, looking through wrappers such as RepeatDataset and
    ConcatDataset."""
    if 'datasets' in dataset:
        for child in dataset['datasets']:
            yield from leaf_datasets(child)
    elif 'dataset' in dataset:
        yield from leaf_datasets(dataset['dataset'])
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


def data_paths(cfg, loader):
    """The folders and files that ``loader`` (e.g. 'train_dataloader') and its evaluator read."""
    leaves = leaf_datasets(cfg[loader]['dataset'])
    paths = [p for leaf in leaves for p in _paths(leaf)]
    return paths + _evaluator_paths(cfg.get(loader.replace('_dataloader', '_evaluator')) or [])


def check_data(cfg, loaders, only=None):
    """Raises FileNotFoundError naming the first missing path that one of ``loaders`` (e.g.
    'train_dataloader') or its evaluator needs (of those in ``only``, if given), and how to get
    the data."""
    for loader in loaders:
        if not cfg.get(loader):
            continue
        for path in data_paths(cfg, loader):
            # remote storage (s3://, ...) is left to its file backend
            if '://' in path or osp.exists(path) or (only is not None and path not in only):
                continue
            root = next(leaf_datasets(cfg[loader]['dataset'])).get('data_root')
            raise FileNotFoundError(
                f"data not found: '{path}' (read by {loader}). Put the data set there, point the "
                f'config at it (--cfg-options {loader}.dataset.data_root=...), or, to try the '
                f'tools without it, {_synthetic_hint(cfg, root)}')


def _synthetic_hint(cfg, root):
    """How to make a synthetic stand-in in a folder of its own: never over the configured data
    root, which may hold (part of) a real data set."""
    kind = SYNTHETIC_KIND.get(cfg.get('default_scope'), '{ade20k,coco}')
    folder = f'data/synthetic_{kind}'
    hint = (f'make a synthetic stand-in of the same layout in a folder of its own: '
            f'python -m mmssm.datasets.synthetic {kind} --out {folder}')
    if osp.normpath(root or '') != osp.normpath(folder):
        hint += f' and use a config that reads it (configs/demo/*synthetic-{kind}.py)'
    return hint


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


def check_weights(cfg, pretrained=True):
    """Raises FileNotFoundError naming a local checkpoint the config loads (``load_from``, or,
    with ``pretrained``, a Pretrained init_cfg: only training initialises weights) that is not
    there."""
    wanted = list(_pretrained(cfg.get('model'), 'model')) if pretrained else []
    if cfg.get('load_from'):
        wanted.append(('load_from', cfg.load_from))
    for key, path in wanted:
        if '://' in str(path) or osp.isfile(path):
            continue
        hint = 'check the path' if key == 'load_from' else (
            f'download the official weights there, or train from scratch with --cfg-options '
            f'{key}=None')
        raise FileNotFoundError(f"checkpoint not found: '{path}' ({key}): {hint}")


def _dataset_default(cfg, leaf, name):
    """A dataset argument from the config, else the dataset class's default."""
    if name in leaf:
        return leaf[name]
    scope = cfg.get('default_scope')
    registry = importlib.import_module(f'{scope}.registry').DATASETS
    with DefaultScope.overwrite_default_scope(scope):
        cls = registry.get(leaf['type'])
    # a subclass may pass the argument on in **kwargs
    for klass in cls.__mro__:
        parameter = inspect.signature(klass.__init__).parameters.get(name)
        if parameter is not None:
            return parameter.default
    raise KeyError(f'{leaf["type"]} takes no {name}')


def _files(folder, suffix):
    """{path relative to folder: size} of the files ending in ``suffix`` below ``folder``."""
    found = {}
    for root, _, names in os.walk(folder):
        for name in names:
            if name.endswith(suffix):
                path = osp.join(root, name)
                found[osp.relpath(path, folder)] = osp.getsize(path)
    return found


def _listing(paths):
    return f'{sorted(paths)[:SHOWN]}{" ..." if len(paths) > SHOWN else ""}'


def _segmentation_problems(cfg, leaf, loader):
    root = leaf.get('data_root') or ''
    prefix = leaf.get('data_prefix') or {}
    if 'seg_map_path' not in prefix or leaf.get('ann_file'):
        return []
    img_dir, ann_dir = osp.join(root, prefix['img_path']), osp.join(root, prefix['seg_map_path'])
    img_suffix = _dataset_default(cfg, leaf, 'img_suffix')
    seg_suffix = _dataset_default(cfg, leaf, 'seg_map_suffix')
    images, labels = _files(img_dir, img_suffix), _files(ann_dir, seg_suffix)
    if not images:
        return [f'{loader} has no images: no *{img_suffix} file below {img_dir}']
    problems = []
    empty = [osp.join(img_dir, p) for p, size in images.items() if size == 0]
    if empty:
        problems.append(f'{len(empty)} empty (0-byte) images, {_listing(empty)}: replace or '
                        f'delete them')
    unpaired = [osp.join(img_dir, p) for p in images
                if p[:-len(img_suffix)] + seg_suffix not in labels]
    if unpaired:
        problems.append(f'{len(unpaired)} images without a label map (*{seg_suffix} of the same '
                        f'name in {ann_dir}), {_listing(unpaired)}: add the label maps or delete '
                        f'the images')
    return problems


def _coco_problems(leaf, loader):
    root = leaf.get('data_root') or ''
    ann_file = osp.join(root, leaf.get('ann_file') or '')
    if not ann_file.endswith('.json') or not osp.isfile(ann_file):
        return []
    with open(ann_file) as f:
        images = json.load(f).get('images') or []
    if not images:
        return [f'{loader} has no images: {ann_file} lists none']
    img_dir = osp.join(root, (leaf.get('data_prefix') or {}).get('img', ''))
    paths = [osp.join(img_dir, image['file_name']) for image in images]
    missing = [p for p in paths if not osp.isfile(p)]
    empty = [p for p in paths if p not in missing and osp.getsize(p) == 0]
    return ([f'{len(missing)} images listed in {ann_file} are not there, {_listing(missing)}: '
             f'add them or remove them from the annotation file'] if missing else []) + (
        [f'{len(empty)} empty (0-byte) images, {_listing(empty)}: replace them'] if empty else [])


def check_samples(cfg, loaders):
    """Raises DataError listing, for every data set of ``loaders``, what would otherwise crash a
    data-loader worker later: an empty split, images without their label map, 0-byte images."""
    problems = []
    for loader in loaders:
        if not cfg.get(loader):
            continue
        for leaf in leaf_datasets(cfg[loader]['dataset']):
            if cfg.get('default_scope') == 'mmseg':
                problems += _segmentation_problems(cfg, leaf, loader)
            else:
                problems += _coco_problems(leaf, loader)
    if problems:
        raise DataError('; '.join(dict.fromkeys(problems)))
