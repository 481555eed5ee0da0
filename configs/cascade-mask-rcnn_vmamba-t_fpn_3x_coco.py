# Cascade Mask R-CNN + VMamba-T on COCO 2017, 3x schedule (36 epochs) at 16 images per iteration
# (8 GPUs x 2), with the data of cascade-mask-rcnn_vim-ti_fpn_3x_coco.py so the families compare
# on one detector. Put the release's ImageNet weights (vssm1_tiny_0230s_ckpt_epoch_264.pth) under
# checkpoints/, or set model.backbone.init_cfg=None to start from scratch.
_base_ = [
    '_base_/models/cascade-mask-rcnn_vmamba_fpn.py', '_base_/datasets/coco_instance.py',
    '_base_/det_runtime.py', '_base_/schedules/schedule_3x.py'
]
model = dict(
    backbone=dict(
        init_cfg=dict(type='Pretrained',
                      checkpoint='checkpoints/vssm1_tiny_0230s_ckpt_epoch_264.pth')))
optim_wrapper = dict(paramwise_cfg=dict(norm_decay_mult=0.))
