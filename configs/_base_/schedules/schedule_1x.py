# 12 epochs, learning rate divided by 10 after epochs 8 and 11, 1000-iteration linear warm-up.
# The optimizer here is a plain AdamW; the model configs replace it with their own.
max_epochs = 12
train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=max_epochs, val_interval=1)
val_cfg = dict(type='ValLoop')
# TestLoop with the checks of runner_type's Runner under any Runner (mmssm.engine.loops)
test_cfg = dict(type='CheckedTestLoop')

param_scheduler = [
    dict(type='LinearLR', start_factor=0.001, by_epoch=False, begin=0, end=1000),
    dict(type='MultiStepLR', begin=0, end=max_epochs, by_epoch=True, milestones=[8, 11],
         gamma=0.1),
]
optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=1e-4, betas=(0.9, 0.999), weight_decay=0.05))

# base_batch_size = 8 GPUs x 2 images per GPU; used by --auto-scale-lr
auto_scale_lr = dict(enable=False, base_batch_size=16)
