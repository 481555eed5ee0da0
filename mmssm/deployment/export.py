"""Exporting a config's model with its checkpoint to ONNX, and checking the file against PyTorch.

torch.onnx's dynamo exporter (``torch.export`` then ONNX), which keeps the scan as one ``scan`` op
that becomes an ONNX ``Scan``, and shapes symbolic for ``--dynamic``. The TorchScript exporter
(``dynamo=False``, deprecated) stops at that op ("could not find kernel for HigherOrderOperator
scan"), and would bake Python shape arithmetic into constants anyway.
"""
import importlib
import json
import os
import os.path as osp
import re

import numpy as np
import torch

from mmssm.checkpoints import describe_fit, read_checkpoint
from .models import DetectorFeatures, SegmentorLogits, averaging_pools

#: the dynamo exporter writes opset 18 (asked for 17, it still writes 18); the graph uses 18's
#: Resize (antialias) and reductions with axes as an input
MIN_OPSET = 18
#: every config's deepest feature map has stride 32 (VMamba's and MambaVision's last stage, the
#: Vim neck's pooled level): a smaller side leaves it less than one cell
MIN_SIDE = 32
TASKS = {'mmseg': 'segmentation', 'mmdet': 'detection-features'}


class ExportError(ValueError):
    """Something in what the user asked for: reported as one line, nothing written."""


def check_request(shape, opset):
    if opset < MIN_OPSET:
        raise ExportError(f'--opset {opset} is too old: the exported graph uses opset {MIN_OPSET} '
                          f'operators (Resize with antialias, reductions with axes as an input) '
                          f'and torch.onnx writes no older; use --opset {MIN_OPSET} or newer')
    if min(shape) < MIN_SIDE:
        raise ExportError(f'--shape {shape[0]} {shape[1]} is below the model\'s minimum '
                          f'{MIN_SIDE}x{MIN_SIDE}: its deepest feature map has stride '
                          f'{MIN_SIDE}; export at the size the model will see (e.g. 512 512)')


def check_dynamic(model):
    """Refuses --dynamic for what cannot be written with symbolic sizes."""
    if any(getattr(m, 'mask_padding', False) for m in model.modules()):
        raise ExportError(
            'MambaVision with mask_padding=True cannot export with --dynamic: its windows are cut '
            'to the fullest window and the mask is left out when every window is full, and the '
            'exporter fixes both (and the window count) at the traced size; export at the size '
            'you will run without --dynamic, or use mask_padding=False (the official windows)')


def load_config(path):
    from mmengine.config import Config
    if not osp.isfile(path):
        raise ExportError(f'config file not found: {path}')
    cfg = Config.fromfile(path)
    if cfg.get('default_scope') not in TASKS:
        raise ExportError(f"{path}: default_scope is {cfg.get('default_scope')!r}; expected one "
                          f"of {sorted(TASKS)} (a segmentation or detection config)")
    return cfg


def build_model(cfg, checkpoint):
    """The config's model in eval mode with every tensor from ``checkpoint``: a file that does not
    fit exactly (missing, unexpected or mis-shaped keys) is refused, as tools/test.py does."""
    from mmengine.model import revert_sync_batchnorm
    from mmengine.registry import MODELS, init_default_scope

    import mmssm  # noqa: F401  (registers the backbones)
    init_default_scope(cfg.default_scope)
    # the checkpoint holds every weight: the backbone's ImageNet file is not read
    cfg.model.backbone.init_cfg = None
    model = revert_sync_batchnorm(MODELS.build(cfg.model))
    if not osp.isfile(checkpoint):
        raise ExportError(f'checkpoint not found: {checkpoint}')
    state = read_checkpoint(checkpoint)
    state = state.get('state_dict', state) if isinstance(state, dict) else state
    state = {re.sub(r'^module\.', '', k): v for k, v in state.items()}
    expected = model.state_dict()
    found, _, problems = describe_fit(state, expected)
    if problems:
        raise ExportError(f'{checkpoint} does not fit this {type(model).__name__}: {found} of '
                          f'{len(expected)} model tensors found. ' + '; '.join(problems)
                          + '. Is it a checkpoint of this config?')
    model.load_state_dict(state, strict=True)
    return model.eval()


def exportable(cfg, model):
    """The module to export, and its output names."""
    if cfg.default_scope == 'mmseg':
        try:
            return SegmentorLogits(model).eval(), ['logits']
        except ValueError as error:
            raise ExportError(str(error)) from None
    module = DetectorFeatures(model).eval()
    with torch.no_grad():  # a neck's level count has no common attribute: count them
        levels = len(module(torch.zeros(1, 3, MIN_SIDE * 2, MIN_SIDE * 2)))
    return module, [f'feat{i}' for i in range(levels)]


def metadata(cfg, config_path, shape, dynamic):
    """What onnx_inference.py needs besides the graph: the task, classes and palette, the test
    pipeline's resize."""
    dataset = cfg.test_dataloader.dataset
    dataset_cls = importlib.import_module(f'{cfg.default_scope}.registry').DATASETS.get(dataset.type)
    meta = dict(getattr(dataset_cls, 'METAINFO', {}))
    meta.update(dataset.get('metainfo') or {})
    resize = next((dict(step) for step in cfg.test_dataloader.dataset.pipeline
                   if step['type'] == 'Resize'), None)
    return {
        'mmssm.task': TASKS[cfg.default_scope],
        'mmssm.config': osp.basename(config_path),
        'mmssm.classes': json.dumps(list(meta.get('classes', []))),
        'mmssm.palette': json.dumps([list(map(int, c)) for c in meta.get('palette', [])]),
        'mmssm.test_resize': json.dumps(resize),
        'mmssm.export_shape': json.dumps(list(shape)),
        'mmssm.dynamic': json.dumps(bool(dynamic)),
    }


def export(module, output_names, shape, out, opset, dynamic, meta):
    """Writes the ONNX file to ``out`` (through a temporary name: a failed export leaves
    nothing). Returns the file's size in bytes."""
    image = example_image(1 if not dynamic else 2, shape)
    dims = None
    if dynamic:
        dyn = torch.export.Dim.DYNAMIC
        dims = ({0: dyn, 2: dyn, 3: dyn}, )
    with torch.no_grad(), averaging_pools(module):
        program = torch.onnx.export(module, (image, ), dynamo=True, opset_version=opset,
                                    input_names=['image'], output_names=output_names,
                                    dynamic_shapes=dims, optimize=True, verbose=False)
    model = program.model_proto
    for key, value in meta.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    import onnx
    onnx.checker.check_model(model)
    tmp = f'{out}.part'
    os.makedirs(osp.dirname(osp.abspath(out)), exist_ok=True)
    try:
        onnx.save(model, tmp)
        os.replace(tmp, out)
    finally:
        if osp.exists(tmp):
            os.remove(tmp)
    return osp.getsize(out)


def example_image(batch, shape, seed=0):
    """A reproducible image batch (float32 BGR, 0..255) with some structure: smooth colour
    gradients plus noise, so that the classes vary over the image."""
    g = torch.Generator().manual_seed(seed)
    H, W = shape
    ys = torch.linspace(0, 1, H).view(1, 1, H, 1)
    xs = torch.linspace(0, 1, W).view(1, 1, 1, W)
    phase = torch.rand(batch, 3, 1, 1, generator=g) * 6.28
    smooth = 127.5 * (1 + torch.sin(6 * xs + 4 * ys + phase))
    noise = torch.rand(batch, 3, H, W, generator=g) * 40
    return (smooth + noise).clamp(0, 255).float()


def ort_session(path, threads=None):
    import onnxruntime as ort
    options = ort.SessionOptions()
    if threads:
        options.intra_op_num_threads = threads
    return ort.InferenceSession(path, options, providers=['CPUExecutionProvider'])


def compare(module, session, image, segmentation):
    """ONNX Runtime vs PyTorch on ``image``: (largest absolute difference, largest PyTorch
    magnitude, fraction of pixels whose argmax class agrees or None)."""
    with torch.no_grad():
        expected = module(image)
    expected = [expected] if torch.is_tensor(expected) else list(expected)
    got = session.run(None, {session.get_inputs()[0].name: image.numpy()})
    diff = max(float(np.abs(g - e.numpy()).max()) for g, e in zip(got, expected))
    scale = max(float(e.abs().max()) for e in expected)
    agree = None
    if segmentation:
        agree = float((got[0].argmax(1) == expected[0].argmax(1).numpy()).mean())
    return diff, scale, agree
