# Mask R-CNN + VMamba-T on COCO 2017, 1x schedule (12 epochs) at 16 images per iteration
# (8 GPUs x 2), AdamW lr 1e-4, weight decay 0.05 except on norms, as the VMamba release. Put the
# release's ImageNet weights (vssm1_tiny_0230s_ckpt_epoch_264.pth) under checkpoints/, or set
# model.backbone.init_cfg=None to start from scratch.
_base_ = [
    '_base_/models/mask-rcnn_vmamba_fpn.py', '_base_/datasets/coco_instance.py',
    '_base_/det_runtime.py', '_base_/schedules/schedule_1x.py'
]
model = dict(
    backbone=dict(
        init_cfg=dict(type='Pretrained',
                      checkpoint='checkpoints/vssm1_tiny_0230s_ckpt_epoch_264.pth')))
optim_wrapper = dict(paramwise_cfg=dict(norm_decay_mult=0.))
