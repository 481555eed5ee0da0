# A tiny Cascade Mask R-CNN on a narrow MambaVision, trained from scratch on the synthetic
# COCO-format data (python -m mmssm.datasets.synthetic coco --out data/synthetic_coco). The tool
# tests run it for a few iterations. The model and optimizer are
# cascade-mask-rcnn_mambavision-t_fpn_3x_coco.py's, narrower and in full precision (mixed
# precision needs a GPU).
_base_ = [
    '../_base_/models/cascade-mask-rcnn_mambavision_fpn.py', '../_base_/datasets/synthetic_coco.py',
    '../_base_/det_demo_runtime.py', '../_base_/schedules/schedule_1x_demo.py'
]

# a list in a config replaces its base's whole: the three heads are spelled out, narrower
bbox_heads = [
    dict(
        type='ConvFCBBoxHead',
        num_shared_convs=4,
        num_shared_fcs=1,
        in_channels=64,
        conv_out_channels=64,
        fc_out_channels=128,
        roi_feat_size=7,
        num_classes=_base_.num_classes,
        bbox_coder=dict(type='DeltaXYWHBBoxCoder', target_means=[0.0] * 4, target_stds=stds),
        reg_class_agnostic=False,
        reg_decoded_bbox=True,
        norm_cfg=dict(type='SyncBN', requires_grad=True),
        loss_cls=dict(type='CrossEntropyLoss', use_sigmoid=False, loss_weight=1.0),
        loss_bbox=dict(type='GIoULoss', loss_weight=10.0))
    for stds in ([0.1, 0.1, 0.2, 0.2], [0.05, 0.05, 0.1, 0.1], [0.033, 0.033, 0.067, 0.067])
]
model = dict(
    backbone=dict(
        # replaces a named arch
        arch=dict(_delete_=True, embed_dims=16, stem_channels=8, depths=(1, 1, 2, 2),
                  num_heads=(1, 2, 4, 8)),
        window_size=(8, 8, 14, 7),
        mask_padding=True,
        drop_path_rate=0.0,
        init_cfg=None),
    neck=dict(in_channels=[16, 32, 64, 128], out_channels=64),
    rpn_head=dict(in_channels=64, feat_channels=64),
    roi_head=dict(
        bbox_roi_extractor=dict(out_channels=64),
        bbox_head=bbox_heads,
        mask_roi_extractor=dict(out_channels=64),
        mask_head=dict(in_channels=64, conv_out_channels=64, num_classes=_base_.num_classes)))
optim_wrapper = dict(
    _delete_=True,
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=1e-4, betas=(0.9, 0.999), weight_decay=0.05),
    paramwise_cfg=dict(custom_keys={'norm': dict(decay_mult=0.)}))
