# Runtime shared by the segmentation configs. The hooks live in the schedule (as in mmseg),
# because logging and checkpoint intervals are counted in the schedule's iterations.
default_scope = 'mmseg'
custom_imports = dict(imports=['mmssm'], allow_failed_imports=False)

# mmssm's Runner (mmssm.engine.runner): checks the inputs before anything is built, sets up gloo
# without a GPU, reads checkpoints weights-only. Scoped, so that scripts that look it up in
# mmengine's root registry (mmdet's train.py) find it too; remove the line for mmengine's Runner.
runner_type = 'mmseg.CheckedRunner'
# CheckpointFitHook: a checkpoint loaded for testing or resuming must fit the model entirely, one
# loaded to fine-tune mostly; ExactResumeHook: a resumed run continues exactly as the uninterrupted
# one (random states saved with each checkpoint)
custom_hooks = [dict(type='CheckpointFitHook'), dict(type='ExactResumeHook')]

env_cfg = dict(
    cudnn_benchmark=True,
    mp_cfg=dict(mp_start_method='fork', opencv_num_threads=0),
    # without a GPU, CheckedRunner makes a gloo group instead; every collective times out after
    # `timeout` seconds (torch's default of 30 minutes leaves a stopped rank silent that long)
    dist_cfg=dict(backend='nccl', timeout=600),
)
vis_backends = [dict(type='LocalVisBackend')]
visualizer = dict(type='SegLocalVisualizer', vis_backends=vis_backends, name='visualizer')
log_processor = dict(by_epoch=False)
log_level = 'INFO'
load_from = None
resume = False

tta_model = dict(type='SegTTAModel')
