"""tools/deployment: each family's segmentor and a detector's backbone + neck exported to ONNX and
run in ONNX Runtime against PyTorch (tiny demo models, random weights, small images, CPU); the
painted inference tool against mmseg's own inference; the bad inputs refused before anything is
written."""
import contextlib
import io
import json
import re
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

onnx = pytest.importorskip('onnx', reason='deployment needs onnx (requirements.txt)')
ort = pytest.importorskip('onnxruntime', reason='deployment needs onnxruntime (requirements.txt)')

from mmssm.deployment.export import ExportError, build_model, check_dynamic, load_config  # noqa: E402
from tools.deployment import onnx_inference, pytorch2onnx  # noqa: E402

DEMOS = Path(__file__).resolve().parents[1] / 'configs/demo'
SEGMENTORS = {
    'vim': DEMOS / 'upernet_vim-demo_synthetic-ade20k.py',
    'vmamba': DEMOS / 'upernet_vmamba-demo_synthetic-ade20k.py',
    'mambavision': DEMOS / 'upernet_mambavision-demo_synthetic-ade20k.py',
}
DETECTOR = DEMOS / 'mask-rcnn_vmamba-demo_synthetic-coco.py'
SHAPE = (96, 128)
# what pytorch2onnx.py checks a dynamic file at: the export size, then batch 2 at another size,
# and a size that is a multiple of neither Vim's 16-pixel patches nor 32 (MambaVision's stage-3
# map, 7x9, and stage-4 map, 4x5, are padded to whole windows)
DYNAMIC_CHECKS = [(1, SHAPE), (2, (128, 96)), (1, (109, 135))]


def random_checkpoint(config, tmp_path):
    """A checkpoint of the config's model with its random initial weights."""
    from mmengine.registry import MODELS, init_default_scope
    cfg = load_config(str(config))
    init_default_scope(cfg.default_scope)
    torch.manual_seed(0)
    cfg.model.backbone.init_cfg = None
    model = MODELS.build(cfg.model)
    model.init_weights()
    state = model.state_dict()
    for key in ('decode_head.conv_seg.weight', 'decode_head.conv_seg.bias'):
        if key in state:  # logits of order 1 (initialised with std 0.01, they are ~10x smaller)
            state[key] = state[key] * 10
    path = tmp_path / 'model.pth'
    torch.save({'state_dict': state}, path)
    return path


def export_cli(monkeypatch, capsys, *argv):
    """pytorch2onnx.py run in this process (no new interpreter to import mmseg/mmdet); returns
    its output, and the exit message if it stopped."""
    monkeypatch.setattr(sys, 'argv', ['pytorch2onnx.py', *map(str, argv)])
    try:
        pytorch2onnx.main()
        stopped = None
    except SystemExit as stop:
        stopped = str(stop.code)
    return capsys.readouterr().out, stopped


def checked(printed, sizes, segmentation):
    """The tool's own ONNX Runtime vs PyTorch lines, one per (batch, size): every difference
    within 1e-4 on outputs of order 1 (the scan's sums in another order), >= 99.9% of pixels
    agreeing."""
    lines = re.findall(r'verify (\d+)x3x(\d+)x(\d+): max \|ONNX Runtime - PyTorch\| = (\S+) '
                       r'\(outputs up to (\S+)\)(?:, pixels whose class agrees: ([\d.]+)%)?',
                       printed)
    assert [(int(b), (int(h), int(w))) for b, h, w, *_ in lines] == sizes, printed
    for *_, diff, scale, agree in lines:
        assert float(diff) <= 1e-4 and 0.1 < float(scale) < 100, printed
        if segmentation:
            assert float(agree) >= 99.9, printed


@pytest.fixture(scope='module')
def vim_export(tmp_path_factory):
    tmp = tmp_path_factory.mktemp('vim')
    checkpoint = random_checkpoint(SEGMENTORS['vim'], tmp)
    out = tmp / 'vim.onnx'
    with pytest.MonkeyPatch.context() as monkeypatch:
        monkeypatch.setattr(sys, 'argv', ['pytorch2onnx.py', str(SEGMENTORS['vim']),
                                          str(checkpoint), '--shape', *map(str, SHAPE),
                                          '--dynamic', '--out', str(out)])
        with contextlib.redirect_stdout(io.StringIO()) as printed:
            pytorch2onnx.main()
    return checkpoint, out, printed.getvalue()


def test_vim_segmentor_dynamic(vim_export):
    checkpoint, out, printed = vim_export
    checked(printed, DYNAMIC_CHECKS, segmentation=True)
    model = onnx.load(str(out))
    # the scan is standard ONNX: no operator from another domain, and Scan ops inside the graph
    domains = {n.domain for n in model.graph.node} | {o.domain for o in model.opset_import}
    assert domains <= {'', 'ai.onnx'}, domains
    assert 'Scan' in {n.op_type for n in _all_nodes(model.graph)}
    dims = [d.dim_param or d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim]
    assert dims[1] == 3 and all(isinstance(d, str) for d in (dims[0], dims[2], dims[3])), dims
    meta = {p.key: p.value for p in model.metadata_props}
    assert meta['mmssm.task'] == 'segmentation'
    assert len(json.loads(meta['mmssm.classes'])) == len(json.loads(meta['mmssm.palette'])) == 150


def test_mambavision_segmentor_dynamic(tmp_path, monkeypatch, capsys):
    """The official windows: maps padded to whole windows inside the graph."""
    config = SEGMENTORS['mambavision']
    printed, stopped = export_cli(monkeypatch, capsys, config, random_checkpoint(config, tmp_path),
                                  '--shape', *SHAPE, '--dynamic', '--out', tmp_path / 'm.onnx')
    assert stopped is None, printed
    checked(printed, DYNAMIC_CHECKS, segmentation=True)


def test_vmamba_segmentor_static(tmp_path, monkeypatch, capsys):
    config = SEGMENTORS['vmamba']
    out = tmp_path / 'm.onnx'
    printed, stopped = export_cli(monkeypatch, capsys, config, random_checkpoint(config, tmp_path),
                                  '--shape', *SHAPE, '--out', out)
    assert stopped is None, printed
    checked(printed, [(1, SHAPE)], segmentation=True)
    dims = [d.dim_value for d in onnx.load(str(out)).graph.input[0].type.tensor_type.shape.dim]
    assert dims == [1, 3, *SHAPE]


def _all_nodes(graph):
    for node in graph.node:
        yield node
        for attr in node.attribute:
            if attr.g.node:
                yield from _all_nodes(attr.g)


def test_detector_backbone_and_neck_static(tmp_path, monkeypatch, capsys):
    printed, stopped = export_cli(monkeypatch, capsys, DETECTOR,
                                  random_checkpoint(DETECTOR, tmp_path), '--shape', *SHAPE,
                                  '--out', tmp_path / 'det.onnx')
    assert stopped is None, printed
    assert re.search(r'outputs feat0, feat1, feat2, feat3, feat4', printed), printed
    checked(printed, [(1, SHAPE)], segmentation=False)


def test_onnx_inference_paints_what_mmseg_predicts(vim_export, tmp_path, monkeypatch, capsys):
    """The inference tool's label maps equal mmseg's inference_model on the PyTorch model (the
    images are at the config's test scale, and one is not a multiple of 32)."""
    import mmcv
    from mmseg.apis import inference_model
    checkpoint, out, _ = vim_export
    rng = np.random.default_rng(0)
    images = []
    for i, (h, w) in enumerate([(128, 128), (96, 100)]):
        ys, xs = np.mgrid[0:h, 0:w]
        image = (np.stack([xs * 2, ys * 2, (xs + ys)], -1) % 256 + rng.integers(0, 30, (h, w, 3)))
        images.append(str(tmp_path / f'img{i}.png'))
        mmcv.imwrite(image.clip(0, 255).astype(np.uint8), images[-1])
    monkeypatch.setattr(sys, 'argv', ['onnx_inference.py', str(out), *images,
                                      '--out-dir', str(tmp_path / 'out')])
    onnx_inference.main()
    cfg = load_config(str(SEGMENTORS['vim']))
    model = build_model(cfg, str(checkpoint))
    model.cfg = cfg
    for path in images:
        stem = Path(path).stem
        painted = mmcv.imread(str(tmp_path / 'out/vis' / Path(path).name))
        assert painted.shape == mmcv.imread(path).shape
        pred = mmcv.imread(str(tmp_path / f'out/pred/{stem}_pred.png'), flag='unchanged')
        expected = inference_model(model, path).pred_sem_seg.data[0].numpy()
        assert (pred == expected).mean() >= 0.999


@pytest.mark.parametrize('case', ['config', 'checkpoint', 'opset', 'shape'])
def test_bad_input_is_one_line_and_writes_nothing(case, tmp_path, monkeypatch, capsys):
    config, shape, opset = SEGMENTORS['vim'], ('64', '64'), '18'
    checkpoint = tmp_path / 'other.pth'
    if case == 'checkpoint':  # another family's model
        checkpoint = random_checkpoint(SEGMENTORS['vmamba'], tmp_path)
    if case == 'config':
        config = tmp_path / 'missing.py'
    if case == 'opset':
        opset = '11'
    if case == 'shape':
        shape = ('16', '64')
    out = tmp_path / 'model.onnx'
    _, stopped = export_cli(monkeypatch, capsys, config, checkpoint, '--shape', *shape,
                            '--opset', opset, '--out', out)
    assert stopped is not None and stopped.startswith('error: ') and '\n' not in stopped
    expected = {'config': 'config file not found', 'checkpoint': 'does not fit this SSMEncoderDecoder',
                'opset': '--opset 11 is too old', 'shape': "below the model's minimum 32x32"}
    assert expected[case] in stopped, stopped
    if case == 'checkpoint':
        assert 'missing keys' in stopped and 'unexpected keys' in stopped
    assert list(tmp_path.glob('*.onnx*')) == []


def test_dynamic_export_of_masked_windows_is_refused():
    """mask_padding's window length and mask depend on the map size beyond what the exporter
    keeps symbolic (a file traced at one size fails at sizes with more windows): refused."""
    from mmssm.models.backbones import MambaVision
    arch = dict(embed_dims=16, stem_channels=8, depths=(1, 1, 1, 1), num_heads=(1, 1, 1, 1))
    check_dynamic(MambaVision(arch=arch, window_size=(8, 8, 8, 4)))
    with pytest.raises(ExportError, match='mask_padding=True cannot export with --dynamic'):
        check_dynamic(MambaVision(arch=arch, window_size=(8, 8, 8, 4), mask_padding=True))
