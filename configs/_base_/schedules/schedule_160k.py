# 160k iterations, poly decay after a 1500-iteration linear warm-up. The optimizer here is a plain
# AdamW; the model configs replace it with their own (e.g. layer-wise decay).
optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=6e-5, betas=(0.9, 0.999), weight_decay=0.01),
    clip_grad=None)
warmup_iters = 1500
max_iters = 160000
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-6, by_epoch=False, begin=0, end=warmup_iters),
    dict(type='PolyLR', eta_min=0.0, power=1.0, by_epoch=False, begin=warmup_iters,
         end=max_iters),
]
train_cfg = dict(type='IterBasedTrainLoop', max_iters=max_iters, val_interval=16000)
val_cfg = dict(type='ValLoop')
# TestLoop, which does the checks of mmssm's Runner (runner_type) when a script builds mmengine's
# Runner instead, as mmseg's test.py does (mmssm.engine.loops); 'TestLoop' to drop them
test_cfg = dict(type='CheckedTestLoop')
default_hooks = dict(
    timer=dict(type='IterTimerHook'),
    logger=dict(type='LoggerHook', interval=50, log_metric_by_epoch=False),
    param_scheduler=dict(type='ParamSchedulerHook'),
    # written to a temporary file and renamed: a checkpoint is whole whenever it exists
    # (mmssm.checkpoints.writing; drop backend_args for mmengine's plain writes)
    checkpoint=dict(type='CheckpointHook', by_epoch=False, interval=16000,
                    backend_args=dict(backend='atomic_checkpoint')),
    sampler_seed=dict(type='DistSamplerSeedHook'),
    visualization=dict(type='SegVisualizationHook'))
