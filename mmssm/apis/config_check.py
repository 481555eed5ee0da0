"""Checks of what a user adds to a config on the command line, before anything is built: a
misspelt ``--cfg-options`` key would otherwise become a new key that nothing reads."""
import difflib
import inspect


class ConfigError(ValueError):
    pass


def _closest(word, choices):
    close = difflib.get_close_matches(word, [str(c) for c in choices], n=1, cutoff=0.6)
    return close[0] if close else None


def check_options(cfg, options):
    """Raises ConfigError for an option (``a.b.c=value``) whose parent (``a.b``) is not in
    ``cfg``, naming the closest existing key. A new leaf under an existing parent is allowed."""
    tree = cfg.to_dict()
    for key, value in options.items():
        node, path = tree, []
        for part in key.split('.')[:-1]:
            if node is None:  # a None in the config may be replaced by a dict
                break
            if isinstance(node, (list, tuple)) and part.isdigit() and int(part) < len(node):
                node = node[int(part)]
            elif isinstance(node, dict) and part in node:
                node = node[part]
            else:
                where = '.'.join(path) or 'the config'
                choices = list(node) if isinstance(node, dict) else []
                close = _closest(part, choices)
                suggestion = (f"; did you mean '{'.'.join(path + [close])}'?" if close else
                              f'; it has {sorted(map(str, choices))[:12]}' if choices else '')
                raise ConfigError(f"--cfg-options {key}={value}: {where} has no key '{part}'"
                                  + suggestion)
            path.append(part)


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
