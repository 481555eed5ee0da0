# A tiny Cascade Mask R-CNN on a 4-block Vim, trained from scratch on the synthetic COCO-format data
# (python -m mmssm.datasets.synthetic coco --out data/synthetic_coco). The tool tests run it for a
# few iterations. The model and optimizer are cascade-mask-rcnn_vim-ti_fpn_3x_coco.py's, narrower.
_base_ = [
    '../_base_/models/cascade-mask-rcnn_vim_fpn.py', '../_base_/datasets/synthetic_coco.py',
    '../_base_/det_demo_runtime.py', '../_base_/schedules/schedule_1x_demo.py'
]

# the cascade's three box heads differ only in their regression target scales; they are spelled
# out for this data set's class count (and narrower)
bbox_heads = [
    dict(
        type='Shared2FCBBoxHead',
        in_channels=64,
        fc_out_channels=128,
        roi_feat_size=7,
        num_classes=_base_.num_classes,
        bbox_coder=dict(
            type='DeltaXYWHBBoxCoder', target_means=[0.0] * 4, target_stds=[s, s, 2 * s, 2 * s]),
        reg_class_agnostic=True,
        loss_cls=dict(type='CrossEntropyLoss', use_sigmoid=False, loss_weight=1.0),
        loss_bbox=dict(type='SmoothL1Loss', beta=1.0, loss_weight=1.0))
    for s in (0.1, 0.05, 0.033)
]
model = dict(
    # the synthetic images hold 1-4 objects: a few dozen proposals and ten detections are plenty,
    # and keep the heads' share of a CPU step small (mmdet's defaults: 1000-2000 and 100)
    train_cfg=dict(rpn_proposal=dict(max_per_img=64)),
    test_cfg=dict(rpn=dict(max_per_img=64), rcnn=dict(max_per_img=10)),
    backbone=dict(
        arch=dict(_delete_=True, embed_dims=96, depth=4),  # replaces a named arch
        img_size=_base_.image_size[0],
        drop_path_rate=0.0,
        init_cfg=None),
    neck=dict(out_channels=64),
    rpn_head=dict(in_channels=64, feat_channels=64),
    roi_head=dict(
        bbox_roi_extractor=dict(out_channels=64),
        bbox_head=bbox_heads,
        mask_roi_extractor=dict(out_channels=64),
        mask_head=dict(in_channels=64, conv_out_channels=64, num_classes=_base_.num_classes)))
optim_wrapper = dict(
    _delete_=True,
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=1e-4, betas=(0.9, 0.999), weight_decay=0.1),
    constructor='LayerDecayOptimWrapperConstructor',
    paramwise_cfg=dict(layer_decay_rate=0.8),
    clip_grad=dict(max_norm=1.0))
