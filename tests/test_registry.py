"""The ``mmssm`` registry scope, which mmengine builds the objects of an ``mmssm::`` ``_base_`` in:
each type is looked up in the registries of the family the config runs in (mmseg or mmdet), and
with no family to go by a name that means different classes in the two is refused."""
from collections import OrderedDict

import pytest
from mmdet.datasets.transforms import PackDetInputs
from mmdet.datasets.transforms import Resize as DetResize
from mmdet.models.losses import CrossEntropyLoss as DetCrossEntropyLoss
from mmengine.registry import MODELS, TRANSFORMS, DefaultScope
from mmseg.datasets.transforms import PackSegInputs
from mmseg.datasets.transforms import Resize as SegResize
from mmseg.models.losses import CrossEntropyLoss as SegCrossEntropyLoss

from mmssm.models.backbones.vim import VisionMamba
from mmssm.registry import AmbiguousTypeError


@pytest.fixture
def no_default_scope(monkeypatch):
    """A process in which no default scope was ever set (the DefaultScopes other tests made are
    put back afterwards)."""
    monkeypatch.setattr(DefaultScope, '_instance_dict', OrderedDict())


def scoped(type_, **kwargs):
    """An object of an mmssm:: base, as mmengine's Config stamps it."""
    return dict(type=type_, _scope_='mmssm', **kwargs)


def test_a_name_of_both_families_is_refused_without_a_family(no_default_scope):
    with pytest.raises(AmbiguousTypeError) as error:
        MODELS.build(scoped('CrossEntropyLoss'))
    assert str(error.value) == (
        "model type 'CrossEntropyLoss' is built in scope mmssm (an object of an mmssm:: _base_, "
        "or mmengine.hub.get_model('mmssm::...')), where it could be mmseg's "
        "mmseg.models.losses.cross_entropy_loss.CrossEntropyLoss or mmdet's "
        "mmdet.models.losses.cross_entropy_loss.CrossEntropyLoss: nothing says which family "
        "this build is for. Set the config's default_scope first, "
        "mmengine.registry.init_default_scope('mmseg') or ('mmdet'), as a Runner built from the "
        'config does')


def test_a_name_of_one_family_or_one_class_resolves_without_a_family(no_default_scope):
    assert type(TRANSFORMS.build(scoped('PackSegInputs'))) is PackSegInputs
    assert type(TRANSFORMS.build(scoped('PackDetInputs'))) is PackDetInputs
    # mmssm's backbones: the same class in both families
    assert MODELS.get('mmssm.VisionMamba') is VisionMamba


@pytest.mark.parametrize('family', ['mmseg', 'mmdet'])
def test_names_are_the_family_s_classes(no_default_scope, family):
    """What a config of the family builds, also inside an object of an mmssm:: base (the loss
    that a model builds while mmengine's scope is mmssm)."""
    loss = {'mmseg': SegCrossEntropyLoss, 'mmdet': DetCrossEntropyLoss}[family]
    resize = {'mmseg': SegResize, 'mmdet': DetResize}[family]
    DefaultScope.get_instance('test', scope_name=family)
    assert type(MODELS.build(scoped('CrossEntropyLoss'))) is loss
    assert type(TRANSFORMS.build(scoped('Resize', scale=(8, 8)))) is resize
    with DefaultScope.overwrite_default_scope('mmssm'):
        assert type(MODELS.build(dict(type='CrossEntropyLoss'))) is loss
    assert DefaultScope.get_current_instance().scope_name == family
