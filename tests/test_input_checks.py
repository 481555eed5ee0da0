"""Bad data, config typos and a synthetic data set over real data stop with the file or key and
the fix, before anything is trained."""
import re
from argparse import Namespace
from pathlib import Path

import numpy as np
import pytest
from mmengine.config import Config
from mmengine.hooks import CheckpointHook

from mmssm.apis import check_data, check_samples, load_config, user_errors_reported
from mmssm.apis.config_check import (ConfigError, check_checkpoint_hook, check_lengths,
                                     check_options)
from mmssm.datasets import CheckSegAnnotation, DataError
from mmssm.datasets.synthetic import main as synthetic_main
from mmssm.datasets.synthetic import make

REPO = Path(__file__).resolve().parents[1]
SEG_CONFIG = REPO / 'configs/demo/upernet_vim-demo_synthetic-ade20k.py'
DET_CONFIG = REPO / 'configs/demo/cascade-mask-rcnn_vim-demo_synthetic-coco.py'


def seg_cfg(root):
    cfg = Config.fromfile(SEG_CONFIG)
    for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        cfg[loader].dataset.data_root = str(root)
    return cfg


# the synthetic generator


def test_generator_refuses_a_folder_it_did_not_make(tmp_path):
    real = tmp_path / 'ADEChallengeData2016'
    (real / 'images/training').mkdir(parents=True)
    (real / 'images/training/ADE_train_00000001.jpg').write_bytes(b'real image')
    with pytest.raises(SystemExit, match=f'error: {real} is not empty and was not made by this '
                                         f'generator.*--out data/synthetic_ade20k.*--force'):
        synthetic_main(['ade20k', '--out', str(real), '--num-train', '1', '--num-val', '1'])
    assert (real / 'images/training/ADE_train_00000001.jpg').read_bytes() == b'real image'

    assert make('ade20k', str(real), force=True, num_train=1, num_val=1, size=32)


def test_generator_redoes_its_own_folder(tmp_path):
    out = tmp_path / 'synthetic'
    assert make('coco', str(out), num_train=1, num_val=1, size=32)
    (out / '.complete').unlink()  # as if interrupted
    assert make('coco', str(out), num_train=1, num_val=1, size=32)
    assert not make('coco', str(out), num_train=1, num_val=1, size=32)


@pytest.mark.parametrize('args, message', [
    (['--num-train', '0'], '--num-train must be a whole number of at least 1, got 0 (training and '
     'validation each need an image)'),
    (['--num-val', '-2'], '--num-val must be a whole number of at least 1, got -2'),
    (['--size', '1'], '--size must be a whole number of at least 32, got 1 (the backbones '
     'downsample by 32)'),
])
def test_generator_refuses_sizes_that_make_no_data_set(tmp_path, args, message):
    out = tmp_path / 'synthetic'
    with pytest.raises(SystemExit) as error:
        synthetic_main(['ade20k', '--out', str(out), *args])
    assert str(error.value).startswith(f'error: {message}')
    assert not out.exists()


def test_generator_does_not_mix_kinds(tmp_path):
    out = tmp_path / 'synthetic_ade20k'
    assert make('ade20k', str(out), num_train=1, num_val=1, size=32)
    for interrupted in (False, True):
        if interrupted:
            (out / '.complete').unlink()
        with pytest.raises(SystemExit, match=f'error: {out} holds a synthetic ade20k data set: '
                                             f'writing coco into it would mix the two layouts'):
            synthetic_main(['coco', '--out', str(out), '--num-train', '1', '--num-val', '1'])
    assert not (out / 'annotations/instances_train2017.json').exists()


def test_data_hint_names_a_separate_folder(tmp_path):
    cfg = Config.fromfile(REPO / 'configs/upernet_vim-ti_ade20k.py')
    cfg.train_dataloader.dataset.data_root = str(tmp_path / 'ade')
    with pytest.raises(FileNotFoundError) as error:
        check_data(cfg, ['train_dataloader'])
    message = str(error.value)
    assert 'python -m mmssm.datasets.synthetic ade20k --out data/synthetic_ade20k' in message
    assert 'configs/demo/*synthetic-ade20k.py' in message
    assert f'--out {tmp_path}' not in message


# data checks before training and testing


@pytest.fixture
def ade(tmp_path):
    root = tmp_path / 'ade'
    make('ade20k', str(root), num_train=4, num_val=2, size=32)
    return root


def test_missing_label_maps_and_empty_images_are_listed_at_once(ade):
    (ade / 'annotations/training/ADE_train_00000001.png').unlink()
    (ade / 'images/training/ADE_train_00000002.jpg').write_bytes(b'')
    with pytest.raises(DataError) as error:
        check_samples(seg_cfg(ade), ['train_dataloader', 'val_dataloader'])
    message = str(error.value)
    assert (f"1 empty (0-byte) images, ['{ade}/images/training/ADE_train_00000002.jpg']: "
            f'replace or delete them') in message
    assert (f"1 images without a label map (*.png of the same name in {ade}/annotations/"
            f"training), ['{ade}/images/training/ADE_train_00000001.jpg']") in message


def test_empty_split_is_named(ade):
    for image in (ade / 'images/validation').iterdir():
        image.unlink()
    with pytest.raises(DataError, match=f'val_dataloader has no images: no \\*.jpg file below '
                                        f'{ade}/images/validation'):
        check_samples(seg_cfg(ade), ['train_dataloader', 'val_dataloader'])


def test_before_building_only_what_every_run_reads_is_refused(ade):
    """Before the Runner knows whether it will train or test: a hole in the training split is
    left to training (a test run does not read it); one in the split that training validates on
    and testing tests is refused at once."""
    from mmssm.engine.runner import check_before_building
    (ade / 'annotations/training/ADE_train_00000001.png').unlink()
    check_before_building(seg_cfg(ade))
    (ade / 'annotations/validation/ADE_valid_00000001.png').unlink()
    with pytest.raises(SystemExit, match=r'error: 1 images without a label map .*validation'):
        check_before_building(seg_cfg(ade))


def test_coco_images_missing_from_disk(tmp_path):
    root = tmp_path / 'coco'
    make('coco', str(root), num_train=2, num_val=1, size=32)
    (root / 'train2017/000000000002.jpg').unlink()
    cfg = Config.fromfile(DET_CONFIG)
    cfg.train_dataloader.dataset.data_root = str(root)
    with pytest.raises(DataError, match=r'1 images listed in .*instances_train2017.json are not '
                                        r'there, \[.*000000000002.jpg'):
        check_samples(cfg, ['train_dataloader'])


def sample(label, shape=(4, 6)):
    return dict(gt_seg_map=np.asarray(label, np.uint8), ori_shape=shape, seg_map_path='a.png',
                img_path='a.jpg', reduce_zero_label=True)


def test_label_map_of_another_size():
    with pytest.raises(DataError, match=r'label map a.png is 5x4 pixels but its image a.jpg is '
                                        r'6x4: a label map must have the size of its image'):
        CheckSegAnnotation(num_classes=8)(sample(np.zeros((4, 5))))


def test_label_values_outside_the_classes():
    label = np.zeros((4, 6))
    label[0, :3] = (7, 255, 9)
    # reported as the file holds them: reduce_zero_label made 10 into 9
    with pytest.raises(DataError, match=r'label map a.png holds values \[10\] that are neither '
                                        r'one of the 8 classes \(1..8 in the file, 0..7 after '
                                        r'reduce_zero_label\)'):
        CheckSegAnnotation(num_classes=8)(sample(label))
    label[0, 2] = 3
    assert CheckSegAnnotation(num_classes=8)(sample(label)) is not None


@pytest.mark.parametrize('values', [(261, ), (1000, 300), (3, )])
def test_16_bit_label_maps_are_read_at_their_depth(tmp_path, values):
    """mmseg keeps 8 bits of each label value: 261 would train as class 4 (5 - 1 after
    reduce_zero_label). Values above 255 stop with the values in the file."""
    from mmseg.datasets.transforms import LoadAnnotations
    from PIL import Image
    label = np.ones((4, 6), np.uint16)
    label[0, :len(values)] = values
    path = tmp_path / 'label.png'
    Image.fromarray(label).save(path)
    assert Image.open(path).mode.startswith('I;16')
    results = LoadAnnotations()(dict(seg_map_path=str(path), reduce_zero_label=True,
                                     seg_fields=[], img_path='a.jpg', ori_shape=(4, 6)))
    check = CheckSegAnnotation(num_classes=150)
    if max(values) <= 255:
        assert set(np.unique(check(results)['gt_seg_map'])) == {0, values[0] - 1}
        return
    with pytest.raises(DataError, match=rf'label map {path} holds values '
                                        rf'\[{", ".join(map(str, sorted(values)))}\] above 255 '
                                        rf'\(it is a 16-bit or deeper image\)'):
        check(results)


def _image(path, w, h, cut=0, pad=b''):
    from PIL import Image
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (h, w, 3), np.uint8)).save(path)
    data = path.read_bytes()
    path.write_bytes(data[:len(data) - cut] + pad)
    return path


def test_images_that_would_fail_deep_in_the_pipeline_are_named(tmp_path):
    import mmcv
    from mmssm.datasets.checks import CheckImageFile
    cfg = Config.fromfile(SEG_CONFIG)  # the check is declared in the dataset base
    for loader in ('train_dataloader', 'val_dataloader'):
        pipeline = cfg[loader].dataset.pipeline
        assert pipeline[0] == dict(type='CheckImageFile', scale=(128, 128))
        assert pipeline[1].type == 'LoadImageFromFile'
    check = CheckImageFile(scale=(128, 128))
    cut = _image(tmp_path / 'cut.jpg', 64, 48, cut=300)
    assert mmcv.imread(str(cut)) is None  # what LoadImageFromFile asserts on, without a hint
    problems = {
        cut: 'is truncated (a JPEG without its end-of-image marker)',
        _image(tmp_path / 'cut.png', 64, 48, cut=20): 'is truncated (a PNG without its IEND chunk)',
        _image(tmp_path / 'thin.jpg', 4, 3000): "is 4x3000 pixels, which the pipeline's resize to "
        'fit (128, 128) (keeping the aspect ratio) makes 0x128',
    }
    for path, problem in problems.items():
        with pytest.raises(DataError) as error:
            check(dict(img_path=str(path)))
        assert str(error.value) == f'image {path} {problem}: replace it (crop or pad it) or delete it'
    # usable: a JPEG padded after its end marker, and the thin one where it keeps 3 pixels
    padded = _image(tmp_path / 'padded.jpg', 64, 48, pad=bytes(100))
    assert mmcv.imread(str(padded)).shape == (48, 64, 3)
    assert check(dict(img_path=str(padded)))
    assert CheckImageFile(scale=(2048, 512))(dict(img_path=str(tmp_path / 'thin.jpg')))


def test_worker_error_is_reported_as_its_own_line():
    # how torch re-raises an error from a data-loader worker
    message = ('Caught DataError in DataLoader worker process 0.\nOriginal Traceback (most recent '
               'call last):\n  File "x.py", line 1\nmmssm.datasets.checks.DataError: label map '
               'a.png is 5x4 pixels')
    with pytest.raises(SystemExit, match=r'^error: label map a.png is 5x4 pixels$'):
        with user_errors_reported():
            raise DataError(message)


# config typos


def test_misspelt_option_parent_is_refused_with_the_closest_key():
    cfg = Config.fromfile(SEG_CONFIG)
    with pytest.raises(ConfigError, match=r"optim_wraper.optimizer.lr=0.1: the config has no key "
                                          r"'optim_wraper'; did you mean 'optim_wrapper'\?"):
        check_options(cfg, {'optim_wraper.optimizer.lr': 0.1})
    with pytest.raises(ConfigError, match=r"default_hooks has no key 'chekpoint'; did you mean "
                                          r"'default_hooks.checkpoint'\?"):
        check_options(cfg, {'default_hooks.chekpoint.interval': 5})
    check_options(cfg, {'optim_wrapper.optimizer.lr': 0.1, 'default_hooks.checkpoint.max_keep_'
                        'ckpts': 2, 'train_dataloader.dataset.pipeline.3.prob': 0.2,
                        'model.backbone.init_cfg._delete_': True,
                        'model.backbone.init_cfg.type': 'Pretrained'})
    options = {'model.backbone.init_cfg._delete_': True, 'model.backbone.init_cfg.type':
               'Pretrained', 'model.backbone.init_cfg.checkpoint': 'vim.pth'}
    cfg.merge_from_dict(options)  # what the check lets through, mmengine merges
    assert cfg.model.backbone.init_cfg == dict(type='Pretrained', checkpoint='vim.pth')


@pytest.mark.parametrize('option, message', [
    ('model.backbone.init_cfg.checkpoint', "model.backbone.init_cfg is None in the config, so it "
     "has no 'checkpoint'; to make it a dict, also pass --cfg-options "
     "model.backbone.init_cfg._delete_=True (and every key it needs)"),
    ('train_cfg.max_iter', "train_cfg has no key 'max_iter'; did you mean 'train_cfg.max_iters'?"),
    ('default_hooks.logger.intervl', "default_hooks.logger has no key 'intervl'; did you mean "
     "'default_hooks.logger.interval'?"),
    ('train_dataloader.batch_sze', "train_dataloader has no key 'batch_sze'; did you mean "
     "'train_dataloader.batch_size'?"),
])
def test_option_under_none_or_misspelt_leaf_is_refused(option, message):
    cfg = Config.fromfile(SEG_CONFIG)
    with pytest.raises(ConfigError) as error:
        check_options(cfg, {option: 3})
    assert str(error.value) == f'--cfg-options {option}=3: {message}'
    with pytest.raises(TypeError):  # what mmengine does with the first without the check
        Config.fromfile(SEG_CONFIG).merge_from_dict(
            {'model.backbone.init_cfg.checkpoint': 'vim.pth'})


@pytest.mark.parametrize('key, value, loaders', [
    ('train_cfg.max_iters', 0, ['train_dataloader']),
    ('train_dataloader.batch_size', 0, ['train_dataloader']),
    ('val_dataloader.batch_size', -1, ['val_dataloader']),
    ('train_cfg.max_iters', 2.5, ['train_dataloader']),
])
def test_training_length_and_batch_size_of_at_least_one(key, value, loaders):
    cfg = Config.fromfile(SEG_CONFIG)
    cfg.merge_from_dict({key: value})
    with pytest.raises(ConfigError, match=rf'^{re.escape(key)} must be a whole number of at '
                                          rf'least 1, got {value}$'):
        check_lengths(cfg, loaders)
    check_lengths(Config.fromfile(SEG_CONFIG), loaders)


def test_misspelt_checkpoint_argument_is_caught_before_training():
    from mmengine.runner import Runner
    runner = Namespace(hooks=[CheckpointHook(interval=5, intervl=5)],
                       save_checkpoint=Runner.save_checkpoint)
    with pytest.raises(ConfigError, match=r"CheckpointHook has no argument 'intervl'; did you "
                                          r"mean 'interval'\?"):
        check_checkpoint_hook(runner)


def test_missing_config_file_is_one_line(tmp_path):
    args = Namespace(config=str(tmp_path / 'nope.py'), launcher='none', cfg_options=None,
                     work_dir=None)
    with pytest.raises(SystemExit, match=f'^error: config file not found: {tmp_path}/nope.py$'):
        load_config(args)


def test_test_image_smaller_than_the_pyramid_needs_is_padded():
    """15x17 pixels is 1x2 patches, too few for the pyramid's stride-32 max-pool: the data
    preprocessor pads test images to a multiple of 32 and the prediction is cropped back."""
    import torch
    from mmengine.registry import init_default_scope
    from mmseg.registry import MODELS
    from mmseg.structures import SegDataSample
    init_default_scope('mmseg')
    cfg = Config.fromfile(SEG_CONFIG)
    cfg.model.backbone.arch.embed_dims = 32
    cfg.model.neck.embed_dim = 32
    cfg.model.decode_head.update(in_channels=[32] * 4, channels=32)
    cfg.model.pop('auxiliary_head')
    model = MODELS.build(cfg.model).eval()
    sample = SegDataSample(metainfo=dict(img_shape=(15, 17), ori_shape=(15, 17)))
    image = torch.randint(0, 256, (3, 15, 17), dtype=torch.uint8)
    with torch.no_grad():
        prediction = model.test_step(dict(inputs=[image], data_samples=[sample]))[0]
    assert prediction.pred_sem_seg.data.shape == (1, 15, 17)
