"""Registration into mmseg's and mmdet's registries at once, so the same type name works in
segmentation and detection configs alike."""
from mmdet.registry import MODELS as DET_MODELS
from mmdet.registry import OPTIM_WRAPPER_CONSTRUCTORS as DET_OPTIM_WRAPPER_CONSTRUCTORS
from mmseg.registry import MODELS as SEG_MODELS
from mmseg.registry import OPTIM_WRAPPER_CONSTRUCTORS as SEG_OPTIM_WRAPPER_CONSTRUCTORS


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
