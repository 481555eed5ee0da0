# 250 iterations for the segmentation demos (a few minutes on a CPU): schedule_160k.py's loop,
# hooks and poly decay, a 25-iteration warm-up, one validation and one checkpoint at the end, a
# fixed seed.
_base_ = './schedule_160k.py'
max_iters = 250
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-3, by_epoch=False, begin=0, end=25),
    dict(type='PolyLR', eta_min=0.0, power=1.0, by_epoch=False, begin=25, end=max_iters),
]
train_cfg = dict(max_iters=max_iters, val_interval=max_iters)
default_hooks = dict(logger=dict(interval=10), checkpoint=dict(interval=max_iters))
randomness = dict(seed=0)
