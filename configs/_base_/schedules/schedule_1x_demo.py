# schedule_1x.py for the detection demos: a 50-iteration warm-up (their epochs are a few
# iterations long) and decay after epochs 9 and 11.
_base_ = './schedule_1x.py'
param_scheduler = [
    dict(type='LinearLR', start_factor=0.001, by_epoch=False, begin=0, end=50),
    dict(type='MultiStepLR', begin=0, end=_base_.max_epochs, by_epoch=True, milestones=[9, 11],
         gamma=0.1),
]
