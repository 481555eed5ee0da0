# Cascade Mask R-CNN on a MambaVision backbone with an FPN over its four stage outputs, and the
# official MambaVision detection heads: each cascade stage's box head has 4 shared convs and one
# fc (SyncBN) and regresses decoded boxes with a GIoU loss. Everything else is mmdet's;
# SSMCascadeRCNN is mmdet's CascadeRCNN that gives the FPN the backbone's out_channels.
_base_ = 'mmdet::_base_/models/cascade-mask-rcnn_r50_fpn.py'
model = dict(
    type='SSMCascadeRCNN',
    backbone=dict(
        _delete_=True,
        type='MambaVision',
        arch='T',
        window_size=(8, 8, 112, 56),
        out_indices=(0, 1, 2, 3),
        # the official dense wrapper drops its config's drop_path_rate and trains with 0.2
        drop_path_rate=0.2),
    neck=dict(in_channels=None),  # None: the backbone's out_channels
    roi_head=dict(bbox_head=[
        dict(
            type='ConvFCBBoxHead',
            num_shared_convs=4,
            num_shared_fcs=1,
            in_channels=256,
            conv_out_channels=256,
            fc_out_channels=1024,
            roi_feat_size=7,
            num_classes=80,
            bbox_coder=dict(
                type='DeltaXYWHBBoxCoder', target_means=[0.0] * 4, target_stds=stds),
            reg_class_agnostic=False,
            reg_decoded_bbox=True,
            norm_cfg=dict(type='SyncBN', requires_grad=True),
            loss_cls=dict(type='CrossEntropyLoss', use_sigmoid=False, loss_weight=1.0),
            loss_bbox=dict(type='GIoULoss', loss_weight=10.0))
        for stds in ([0.1, 0.1, 0.2, 0.2], [0.05, 0.05, 0.1, 0.1], [0.033, 0.033, 0.067, 0.067])
    ]))
