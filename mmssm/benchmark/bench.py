"""Measures a config's model and its baselines side by side: inference and training throughput
(images per second, median of timed repeats after warm-up) and peak memory above what the model
already holds, on the same inputs, in the same process, one shape and mode at a time so that every
figure has its baseline measured right beside it."""
from contextlib import nullcontext
from dataclasses import asdict, dataclass, field
from typing import Callable, List, Optional, Tuple

import torch
from mmengine.config import ConfigDict
from mmengine.model import revert_sync_batchnorm
from mmengine.optim import build_optim_wrapper
from mmengine.registry import MODELS, init_default_scope

from .baselines import baseline_backbone_cfg, get_baseline, swap_backbone
from .inputs import images, packed_batch
from .meters import peak_bytes, time_calls

AMP_DTYPES = {'bf16': torch.bfloat16, 'fp16': torch.float16}
MODES = ('infer', 'train')


@dataclass
class Settings:
    shapes: List[Tuple[int, int]]
    batch: int = 1
    modes: Tuple[str, ...] = MODES
    amp: Optional[str] = None
    compile: bool = False
    channels_last: bool = False
    device: str = 'cpu'
    warmup: int = 2
    repeats: int = 5
    backbone_only: bool = False
    memory: bool = True


@dataclass
class Entry:
    """One model of the run: ours (from the config) or a baseline."""
    name: str
    role: str  # 'model' or 'baseline'
    module: torch.nn.Module
    weight_bytes: int = 0
    optim_wrapper: object = None


@dataclass
class Result:
    model: str
    role: str
    mode: str
    shape: Tuple[int, int]
    batch: int
    seconds: List[float] = field(default_factory=list)
    img_per_s: Optional[float] = None
    spread: Optional[float] = None
    peak_bytes: Optional[int] = None
    weight_bytes: int = 0
    speed_ratio: Optional[float] = None  # img/s over the reference baseline's
    memory_ratio: Optional[float] = None  # peak bytes over the reference baseline's
    error: Optional[str] = None

    def to_dict(self):
        return asdict(self)


def _module_bytes(module):
    return sum(t.numel() * t.element_size()
               for t in (*module.parameters(), *module.buffers()))


def prepare_config(cfg):
    """The config's model without pretrained loading (random weights time the same) and without
    the data preprocessor's padding to a crop size (each model sees exactly the measured shape).
    SyncBN becomes BN after building (revert_sync_batchnorm): the benchmark is one process."""
    model = ConfigDict(cfg.model.to_dict())
    if model.backbone.get('init_cfg'):
        model.backbone.init_cfg = None
    if model.get('data_preprocessor') and model.data_preprocessor.get('size'):
        # mmseg's preprocessor pads to ``size`` or to a multiple of ``size_divisor``, one of them
        model.data_preprocessor.update(size=None, size_divisor=1)
    return model


def build_entries(cfg, baseline_names, settings: Settings) -> List[Entry]:
    task = cfg.default_scope
    init_default_scope(task)
    model_cfg = prepare_config(cfg)
    device = torch.device(settings.device)
    name = cfg.filename.rsplit('/', 1)[-1].rsplit('.', 1)[0] if cfg.filename else 'model'
    specs = [(name, 'model', model_cfg)]
    for baseline_name in baseline_names:
        baseline = get_baseline(baseline_name)
        if settings.backbone_only:
            spec = ConfigDict(backbone=baseline_backbone_cfg(
                baseline, task, model_cfg.backbone.get('img_size')))
        else:
            spec = swap_backbone(model_cfg, baseline, task)
        specs.append((baseline_name, 'baseline', spec))
    entries = []
    for entry_name, role, spec in specs:
        module = MODELS.build(spec.backbone if settings.backbone_only else spec)
        module = revert_sync_batchnorm(module).to(device)
        if settings.channels_last:
            module = module.to(memory_format=torch.channels_last)
        entry = Entry(entry_name, role, module, _module_bytes(module))
        if 'train' in settings.modes:
            entry.optim_wrapper = _optim_wrapper(module, cfg, settings)
        if settings.compile:
            _compile(entry, settings)
        entries.append(entry)
    return entries


def _compile(entry, settings):
    """The backbone is what is compiled: detection heads (proposals, NMS) are dynamic by nature."""
    if settings.backbone_only:
        entry.module = torch.compile(entry.module)
    else:
        entry.module.backbone = torch.compile(entry.module.backbone)


def _optim_wrapper(module, cfg, settings):
    """The config's optimizer and gradient clipping for every model alike; parameter-wise
    settings (layer-wise lr decay) are left out so that every model steps the same optimizer."""
    wrapper = dict(type='OptimWrapper', optimizer=cfg.optim_wrapper.optimizer,
                   clip_grad=cfg.optim_wrapper.get('clip_grad'))
    if settings.amp:
        dtype = str(AMP_DTYPES[settings.amp]).split('.')[-1]
        if settings.device.startswith('cuda'):
            wrapper.update(type='AmpOptimWrapper', dtype=dtype)
        elif settings.amp == 'bf16':
            wrapper.update(type='AutocastOptimWrapper', dtype=dtype, device_type='cpu')
        else:
            raise ValueError('--amp fp16 training needs a GPU (loss scaling through mmengine\'s '
                             'AmpOptimWrapper); use --amp bf16 on the CPU')
    return build_optim_wrapper(module, wrapper)


def _autocast(settings):
    if not settings.amp:
        return nullcontext()
    return torch.autocast(torch.device(settings.device).type, AMP_DTYPES[settings.amp])


def make_step(entry: Entry, mode: str, shape, settings: Settings, task: str,
              num_classes: int) -> Callable[[], object]:
    """The function one timed call runs: a no-grad forward (feature extraction or test step)
    for 'infer', forward + backward + optimizer step for 'train'."""
    module, device = entry.module, torch.device(settings.device)
    module.train(mode == 'train')
    if settings.backbone_only:
        x = images(settings.batch, shape, device)
        if settings.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        if mode == 'infer':
            def step():
                with torch.no_grad(), _autocast(settings):
                    return module(x)
            return step
        wrapper = entry.optim_wrapper

        def step():
            with wrapper.optim_context(module):
                feats = module(x)
            # a loss that reaches every output, so the backward runs through the whole backbone
            wrapper.update_params(sum(f.float().mean() for f in feats))
        return step
    data = packed_batch(task, settings.batch, shape, num_classes, device)
    if mode == 'infer':
        def step():
            with torch.no_grad(), _autocast(settings):
                return module.test_step(data)
        return step
    return lambda: module.train_step(data, entry.optim_wrapper)


def num_classes_of(model_cfg):
    for key in ('decode_head', 'roi_head', 'bbox_head'):
        head = model_cfg.get(key)
        if head is None:
            continue
        head = head.get('bbox_head', head)
        head = head[0] if isinstance(head, (list, tuple)) else head
        if 'num_classes' in head:
            return head['num_classes']
    return 2


def run(cfg, baseline_names, settings: Settings, progress=None) -> List[Result]:
    """Every (shape, mode, model) measured; ``progress(done, total, text)`` is called before each."""
    if not baseline_names:
        raise ValueError('give at least one baseline (e.g. deit-ti): every figure is reported '
                         'as a ratio to a baseline measured in the same run')
    bad = [m for m in settings.modes if m not in MODES]
    if bad:
        raise ValueError(f'unknown mode(s) {bad}; choose from {MODES}')
    if settings.amp and settings.amp not in AMP_DTYPES:
        raise ValueError(f'unknown --amp {settings.amp!r}; choose from {sorted(AMP_DTYPES)}')
    task = cfg.default_scope
    entries = build_entries(cfg, baseline_names, settings)
    classes = num_classes_of(cfg.model)
    device = torch.device(settings.device)
    results, total = [], len(settings.shapes) * len(settings.modes) * len(entries)
    for shape in settings.shapes:
        for mode in settings.modes:
            for entry in entries:
                if progress:
                    progress(len(results), total, f'{entry.name} {mode} {shape[0]}x{shape[1]}')
                results.append(_measure(entry, mode, tuple(shape), settings, task, classes,
                                        device))
    if progress:
        progress(total, total, 'done')
    add_ratios(results, reference=baseline_names[0])
    return results


def _measure(entry, mode, shape, settings, task, classes, device):
    result = Result(entry.name, entry.role, mode, shape, settings.batch,
                    weight_bytes=entry.weight_bytes)
    try:
        step = make_step(entry, mode, shape, settings, task, classes)
        timing = time_calls(step, device, settings.warmup, settings.repeats)
        result.seconds = timing.seconds
        result.img_per_s = settings.batch / timing.median
        result.spread = timing.spread()
        if settings.memory:
            result.peak_bytes = peak_bytes(step, device)
    except torch.cuda.OutOfMemoryError:
        result.error = 'out of memory'
    finally:
        if device.type == 'cuda':
            torch.cuda.empty_cache()
    return result


def add_ratios(results: List[Result], reference: str):
    """speed_ratio and memory_ratio of every result against ``reference`` at its shape and mode."""
    ref = {(r.mode, tuple(r.shape)): r for r in results if r.model == reference}
    for r in results:
        base = ref.get((r.mode, tuple(r.shape)))
        if base is None or r.error or base.error:
            continue
        r.speed_ratio = r.img_per_s / base.img_per_s
        if r.peak_bytes is not None and base.peak_bytes:
            r.memory_ratio = r.peak_bytes / base.peak_bytes
