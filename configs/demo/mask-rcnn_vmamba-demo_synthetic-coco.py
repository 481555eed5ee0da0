# A tiny Mask R-CNN on a narrow VMamba, trained from scratch on the synthetic COCO-format data
# (python -m mmssm.datasets.synthetic coco --out data/synthetic_coco). The tool tests run it for a
# few iterations. The model, optimizer and schedule are mask-rcnn_vmamba-t_fpn_1x_coco.py's,
# narrower.
_base_ = [
    '../_base_/models/mask-rcnn_vmamba_fpn.py', '../_base_/datasets/synthetic_coco.py',
    '../_base_/det_demo_runtime.py', '../_base_/schedules/schedule_1x.py'
]
model = dict(
    # the synthetic images hold 1-4 objects: a few dozen proposals and ten detections are plenty,
    # and keep the heads' share of a CPU step small (mmdet's defaults: 1000-2000 and 100)
    train_cfg=dict(rpn_proposal=dict(max_per_img=64)),
    test_cfg=dict(rpn=dict(max_per_img=64), rcnn=dict(max_per_img=10)),
    backbone=dict(arch=dict(_delete_=True, embed_dims=16, depths=(1, 1, 2, 1)), init_cfg=None),
    neck=dict(out_channels=64),
    rpn_head=dict(in_channels=64, feat_channels=64),
    roi_head=dict(
        bbox_roi_extractor=dict(out_channels=64),
        bbox_head=dict(in_channels=64, fc_out_channels=128, num_classes=_base_.num_classes),
        mask_roi_extractor=dict(out_channels=64),
        mask_head=dict(in_channels=64, conv_out_channels=64, num_classes=_base_.num_classes)))
optim_wrapper = dict(paramwise_cfg=dict(norm_decay_mult=0.))
