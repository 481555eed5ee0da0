# A tiny Cascade Mask R-CNN on a narrow MambaVision, trained from scratch on the synthetic
# COCO-format data (python -m mmssm.datasets.synthetic coco --out data/synthetic_coco). The tool
# tests run it for a few iterations. The model and optimizer are
# cascade-mask-rcnn_mambavision-t_fpn_3x_coco.py's, narrower and in full precision (mixed
# precision needs a GPU).
_base_ = [
    '../_base_/models/cascade-mask-rcnn_mambavision_fpn.py', '../_base_/datasets/synthetic_coco.py',
    '../_base_/det_demo_runtime.py', '../_base_/schedules/schedule_1x_demo.py'
]

# a list in a config replaces its base's whole: the base's three heads, narrower
bbox_heads = [
    dict(head, in_channels=64, conv_out_channels=64, fc_out_channels=128,
         num_classes=_base_.num_classes)
    for head in _base_.model.roi_head.bbox_head
]
model = dict(
    # the synthetic images hold 1-4 objects: a few dozen proposals and ten detections are plenty,
    # and keep the heads' share of a CPU step small (mmdet's defaults: 1000-2000 and 100)
    train_cfg=dict(rpn_proposal=dict(max_per_img=64)),
    test_cfg=dict(rpn=dict(max_per_img=64), rcnn=dict(max_per_img=10)),
    backbone=dict(
        # replaces a named arch
        arch=dict(_delete_=True, embed_dims=16, stem_channels=8, depths=(1, 1, 2, 2),
                  num_heads=(1, 2, 4, 8)),
        window_size=(8, 8, 14, 7),
        mask_padding=True,
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
    optimizer=dict(type='AdamW', lr=1e-4, betas=(0.9, 0.999), weight_decay=0.05),
    paramwise_cfg=dict(custom_keys={'norm': dict(decay_mult=0.)}))
