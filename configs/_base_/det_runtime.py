# Runtime shared by the detection configs (epoch-based, so the hooks can live here as in mmdet).
default_scope = 'mmdet'
custom_imports = dict(imports=['mmssm'], allow_failed_imports=False)

# mmssm's Runner (mmssm.engine.runner): checks the inputs before anything is built, sets up gloo
# without a GPU, reads checkpoints weights-only. Scoped, so that scripts that look it up in
# mmengine's root registry (mmdet's train.py) find it too; remove the line for mmengine's Runner.
runner_type = 'mmdet.CheckedRunner'
# CheckpointFitHook: a checkpoint loaded for testing or resuming must fit the model entirely, one
# loaded to fine-tune mostly; ExactResumeHook: a resumed run continues exactly as the uninterrupted
# one (random states saved with each checkpoint)
custom_hooks = [dict(type='CheckpointFitHook'), dict(type='ExactResumeHook')]

default_hooks = dict(
    timer=dict(type='IterTimerHook'),
    logger=dict(type='LoggerHook', interval=50),
    param_scheduler=dict(type='ParamSchedulerHook'),
    # written to a temporary file and renamed: a checkpoint is whole whenever it exists
    # (mmssm.checkpoints.writing; drop backend_args for mmengine's plain writes)
    checkpoint=dict(type='CheckpointHook', interval=1,
                    backend_args=dict(backend='atomic_checkpoint')),
    sampler_seed=dict(type='DistSamplerSeedHook'),
    visualization=dict(type='DetVisualizationHook'))

env_cfg = dict(
    cudnn_benchmark=False,
    mp_cfg=dict(mp_start_method='fork', opencv_num_threads=0),
    # without a GPU, CheckedRunner makes a gloo group instead; every collective times out after
    # `timeout` seconds (torch's default of 30 minutes leaves a stopped rank silent that long)
    dist_cfg=dict(backend='nccl', timeout=600),
)
vis_backends = [dict(type='LocalVisBackend')]
visualizer = dict(type='DetLocalVisualizer', vis_backends=vis_backends, name='visualizer')
log_processor = dict(type='LogProcessor', window_size=50, by_epoch=True)
log_level = 'INFO'
load_from = None
resume = False
