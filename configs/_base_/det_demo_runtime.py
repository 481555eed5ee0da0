# det_runtime.py for the detection demos: logs every 10 iterations, a fixed seed.
_base_ = './det_runtime.py'
default_hooks = dict(logger=dict(interval=10))
randomness = dict(seed=0)
