"""What ``mmengine.hub.get_model('mmssm::...')`` calls on the package it builds from, by
OpenMMLab's convention."""


def register_all_modules():
    """Registers mmssm's classes, which importing mmssm does. The default scope stays the
    caller's: a model of an mmssm config is built in mmseg's or mmdet's registries, so set the
    config's (``mmengine.registry.init_default_scope('mmseg')``) before ``get_model``."""
    import mmssm  # noqa: F401
