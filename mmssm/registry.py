"""Registration into mmseg's and mmdet's registries at once, so the same type name works in
segmentation and detection configs alike."""
from mmengine.config.utils import MODULE2PACKAGE
from mmdet.registry import MODELS as DET_MODELS
from mmdet.registry import OPTIM_WRAPPER_CONSTRUCTORS as DET_OPTIM_WRAPPER_CONSTRUCTORS
from mmdet.registry import RUNNERS as DET_RUNNERS
from mmseg.registry import MODELS as SEG_MODELS
from mmseg.registry import OPTIM_WRAPPER_CONSTRUCTORS as SEG_OPTIM_WRAPPER_CONSTRUCTORS
from mmseg.registry import RUNNERS as SEG_RUNNERS


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
MODULE2PACKAGE.setdefault('mmssm', 'mmssm')
