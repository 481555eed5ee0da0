"""Checks of what a user adds to a config on the command line, before anything is built: a
misspelt ``--cfg-options`` key would otherwise become a new key that nothing reads."""
import difflib
import inspect


class ConfigError(ValueError):
    pass


def _closest(word, choices, cutoff=0.6):
    close = difflib.get_close_matches(word, [str(c) for c in choices], n=1, cutoff=cutoff)
    return close[0] if close else None


def check_options(cfg, options):
    """Raises ConfigError for an option (``a.b.c=value``) whose parent (``a.b``) is not in
    ``cfg`` or is None (mmengine cannot merge into it), naming the closest existing key; and for
    a new leaf that is one letter or two off an existing one (``max_iter`` beside
    ``max_iters``). Another new leaf under an existing parent is allowed."""
    tree = cfg.to_dict()
    for key, value in options.items():
        node, path = tree, []
        parts = key.split('.')
        for part in parts[:-1]:
            if isinstance(node, (list, tuple)) and part.isdigit() and int(part) < len(node):
                node = node[int(part)]
            elif isinstance(node, dict) and part in node:
                node = node[part]
            else:
                raise ConfigError(_no_key(key, value, path, part, node))
            path.append(part)
            if node is None:
                break
        where = '.'.join(path) or 'the config'
        if node is None:
            if f'{where}._delete_' in options:  # replaced by a new dict: nothing to merge into
                continue
            raise ConfigError(
                f'--cfg-options {key}={value}: {where} is None in the config, so it has no '
                f"'{parts[len(path)]}'; to make it a dict, also pass --cfg-options "
                f'{where}._delete_=True (and every key it needs)')
        leaf = parts[-1]
        if isinstance(node, dict) and leaf not in node and leaf != '_delete_':
            close = _closest(leaf, node, cutoff=0.85)
            if close:
                raise ConfigError(f"--cfg-options {key}={value}: {where} has no key '{leaf}'; "
                                  f"did you mean '{'.'.join(path + [close])}'?")


def _no_key(key, value, path, part, node):
    where = '.'.join(path) or 'the config'
    choices = list(node) if isinstance(node, dict) else []
    close = _closest(part, choices)
    suggestion = (f"; did you mean '{'.'.join(path + [close])}'?" if close else
                  f'; it has {sorted(map(str, choices))[:12]}' if choices else '')
    return f"--cfg-options {key}={value}: {where} has no key '{part}'" + suggestion


def _whole(value, least):
    return isinstance(value, int) and not isinstance(value, bool) and value >= least


def check_lengths(cfg, loaders):
    """Raises ConfigError for a training length (train_cfg.max_iters / max_epochs) or a batch
    size of ``loaders`` below 1: nothing would be trained, or the data loader fails deep inside."""
    train_cfg = cfg.get('train_cfg') or {}
    if 'train_dataloader' in loaders:
        for name in ('max_iters', 'max_epochs'):
            if name in train_cfg and not _whole(train_cfg[name], 1):
                raise ConfigError(f'train_cfg.{name} must be a whole number of at least 1, got '
                                  f'{train_cfg[name]!r}')
    for loader in loaders:
        size = (cfg.get(loader) or {}).get('batch_size')
        if size is not None and not _whole(size, 1):
            raise ConfigError(f'{loader}.batch_size must be a whole number of at least 1, got '
                              f'{size!r}')


def check_checkpoint_hook(runner):
    """CheckpointHook passes the arguments it does not know on to ``Runner.save_checkpoint``, so a
    misspelt one (``intervl``) would only fail at the first save: check them now."""
    from mmengine.hooks import CheckpointHook
    known = set(inspect.signature(runner.save_checkpoint).parameters)
    accepted = known | set(inspect.signature(CheckpointHook).parameters)
    for hook in runner.hooks:
        if isinstance(hook, CheckpointHook):
            for name in sorted(set(hook.args) - known):
                close = _closest(name, accepted)
                raise ConfigError(f"default_hooks.checkpoint: CheckpointHook has no argument "
                                  f"'{name}'" + (f"; did you mean '{close}'?" if close else ''))


def check_test_time_augmentation(cfg):
    """mmdet's DetTTAModel merges the boxes of the augmented views but not their masks (it asserts
    there are none, after the first batch): refuse it around a model with a mask head at once."""
    model = cfg.get('model') or {}
    if model.get('type') == 'DetTTAModel' and (model.get('module', {}).get('roi_head') or {}).get(
            'mask_head'):
        raise ConfigError(
            "--tta: mmdet's DetTTAModel merges boxes but not masks (an mmdet limitation), and "
            "this is an instance segmentation model: test it without --tta")


# what OpenMMLab's train and test scripts (ours too) set on a config themselves
SET_BY_SCRIPTS = ('launcher', 'work_dir', 'load_from', 'resume', 'tta_model', 'tta_pipeline',
                  'test_dataloader.dataset.pipeline', 'test_evaluator', 'visualizer',
                  'default_hooks.visualization', 'optim_wrapper.type', 'optim_wrapper.loss_scale',
                  'auto_scale_lr.enable')


def _changes(before, after, path, out):
    """{dotted key: value} of the leaves of ``after`` that ``before`` does not have or differ."""
    if isinstance(after, dict) and isinstance(before, dict):
        for key, value in after.items():
            _changes(before.get(key, _ABSENT), value, f'{path}{key}.', out)
    elif (isinstance(after, (list, tuple)) and isinstance(before, (list, tuple))
          and len(after) == len(before)):
        for i, (old, new) in enumerate(zip(before, after)):
            _changes(old, new, f'{path}{i}.', out)
    elif isinstance(after, dict) and after and before is _ABSENT:
        _changes({}, after, path, out)
    elif before is _ABSENT or before != after:
        out[path[:-1]] = after


_ABSENT = object()


def check_command_line(cfg):
    """Runs :func:`check_options` on what differs between ``cfg`` and its file, written as
    ``--cfg-options`` writes it (``{'optim_wrapper.optimizer.lr': 0.1}``), leaving out what the
    scripts set themselves. A Runner sees the config only after a script merged the command line
    into it: this is how it finds what the command line changed, whichever script ran."""
    filename = getattr(cfg, 'filename', None)
    if not filename:
        return
    original = cfg.__class__.fromfile(filename)
    before, after = original.to_dict(), cfg.to_dict()
    model, tta = after.get('model') or {}, after.get('tta_model') or {}
    if 'module' in model and 'module' not in (before.get('model') or {}) and (
            model.get('type') == tta.get('type')):  # test --tta wraps the model
        after['model'] = model['module']
    changes = {}
    _changes(before, after, '', changes)
    check_options(original, {
        key: value for key, value in changes.items()
        if not any(key == p or key.startswith(f'{p}.') for p in SET_BY_SCRIPTS)})
