"""Registration into mmseg's and mmdet's registries at once, so the same type name works in
segmentation and detection configs alike; and the ``mmssm`` scope that objects of an
``mmssm::`` ``_base_`` are built in."""
from mmengine.config.utils import MODULE2PACKAGE
from mmengine.registry import DefaultScope, Registry
from mmengine.registry import root as mmengine_registries
from mmdet.registry import MODELS as DET_MODELS
from mmdet.registry import OPTIM_WRAPPER_CONSTRUCTORS as DET_OPTIM_WRAPPER_CONSTRUCTORS
from mmdet.registry import RUNNERS as DET_RUNNERS
from mmseg.registry import MODELS as SEG_MODELS
from mmseg.registry import OPTIM_WRAPPER_CONSTRUCTORS as SEG_OPTIM_WRAPPER_CONSTRUCTORS
from mmseg.registry import RUNNERS as SEG_RUNNERS

SCOPE = 'mmssm'
FAMILIES = ('mmseg', 'mmdet')


def _in_both(*registries):

    def decorator(module=None, *, name=None):

        def register(cls):
            for registry in registries:
                registry.register_module(name=name, module=cls)
            return cls

        return register(module) if module is not None else register

    return decorator


register_model = _in_both(SEG_MODELS, DET_MODELS)
register_optim_wrapper_constructor = _in_both(SEG_OPTIM_WRAPPER_CONSTRUCTORS,
                                              DET_OPTIM_WRAPPER_CONSTRUCTORS)
register_runner = _in_both(SEG_RUNNERS, DET_RUNNERS)

# mmengine resolves 'PACKAGE::FOLDER/NAME.py' (in _base_, mmengine.hub.get_config) for the
# packages it lists: the configs shipped in mmssm/.mim/configs/ are found the same way
MODULE2PACKAGE.setdefault(SCOPE, 'mmssm')


class AmbiguousTypeError(ValueError):
    """A name of different classes in mmseg and mmdet, built where neither is the scope."""


def _enclosing_scope():
    """The default scope that the innermost ``_scope_='mmssm'`` overrode: mmengine's
    ``overwrite_default_scope`` adds a DefaultScope for the time of a build and drops it after,
    so the newest one that is not ours is the scope the config runs in (a Runner's
    ``default_scope``, ``init_default_scope``)."""
    for instance in reversed(list(DefaultScope._instance_dict.values())):
        if instance.scope_name != SCOPE:
            return instance.scope_name
    return None


class FamilyRegistry(Registry):
    """The ``mmssm`` scope of one of mmengine's root registries. mmengine builds each object of an
    ``mmssm::`` ``_base_`` in scope ``mmssm`` (it stamps them ``_scope_='mmssm'``, and what they
    build inside inherits the scope). mmssm's classes live in mmseg's and mmdet's registries,
    where many names (``Resize``, ``LoadAnnotations``, ``CrossEntropyLoss``, ``FPN``) are different
    classes, so this holds nothing: it finds a name in the registry of the scope the config runs
    in, exactly as a config without ``mmssm::`` bases would. With no such scope, a name that means
    different classes in mmseg and mmdet is refused rather than one of them picked."""

    def __init__(self, parent):
        super().__init__(parent.name, parent=parent, scope=SCOPE)

    def get(self, key):
        scope, name = self.split_scope_key(key)
        if scope not in (None, SCOPE):
            return super().get(key)
        enclosing = _enclosing_scope()
        registry = self.parent._search_child(enclosing) if enclosing is not None else None
        if registry is not None:
            return registry.get(name)
        found = {}  # class: the first family that has it
        for name_of_family in FAMILIES:
            registry = self.parent._search_child(name_of_family)
            cls = registry.get(name) if registry is not None else None
            if cls is not None:
                found.setdefault(cls, name_of_family)
        if len(found) > 1:
            classes = ' or '.join(f"{family}'s {cls.__module__}.{cls.__name__}"
                                  for cls, family in found.items())
            raise AmbiguousTypeError(
                f"{self.name} type '{name}' is built in scope mmssm (an object of an mmssm:: "
                f"_base_, or mmengine.hub.get_model('mmssm::...')), where it could be {classes}: "
                "nothing says which family this build is for. Set the config's default_scope "
                "first, mmengine.registry.init_default_scope('mmseg') or ('mmdet'), as a Runner "
                'built from the config does')
        return next(iter(found), None) or self.parent.get(name)


# found by mmengine's registries as their child of scope 'mmssm' (Registry._search_child)
FAMILY_REGISTRIES = {name: FamilyRegistry(registry)
                     for name, registry in vars(mmengine_registries).items()
                     if isinstance(registry, Registry)}
