"""tools/train.py then tools/test.py on the MambaVision demo configs, as a user starts them, on tiny
synthetic data on the CPU (the helpers and conventions are test_tools_e2e.py's). The detection demo
runs its windows with mask_padding, the segmentation demo the official way."""
import sys

from test_tools_e2e import IN_PROCESS_DATA, REPO, metric, run, seg_options, workspace  # noqa: F401

SEG_CONFIG = REPO / 'configs/demo/upernet_mambavision-demo_synthetic-ade20k.py'
DET_CONFIG = REPO / 'configs/demo/cascade-mask-rcnn_mambavision-demo_synthetic-coco.py'


def test_mambavision_segmentation_train_then_test(workspace):
    work_dir = workspace / 'mambavision_seg'
    run(workspace, sys.executable, REPO / 'tools/train.py', SEG_CONFIG, '--work-dir', work_dir,
        *seg_options(2))
    out = run(workspace, sys.executable, REPO / 'tools/test.py', SEG_CONFIG,
              work_dir / 'iter_2.pth', '--work-dir', work_dir, '--cfg-options', *IN_PROCESS_DATA)
    assert 0 <= metric(out, 'mIoU') <= 100


def test_mambavision_detection_train_then_test(workspace):
    work_dir = workspace / 'mambavision_det'
    run(workspace, sys.executable, REPO / 'tools/train.py', DET_CONFIG, '--work-dir', work_dir,
        '--cfg-options', 'train_cfg.max_epochs=1', 'train_cfg.val_interval=2',
        'default_hooks.logger.interval=1', *IN_PROCESS_DATA)
    out = run(workspace, sys.executable, REPO / 'tools/test.py', DET_CONFIG,
              work_dir / 'epoch_1.pth', '--work-dir', work_dir, '--cfg-options', *IN_PROCESS_DATA)
    assert 0 <= metric(out, 'coco/bbox_mAP') <= 1
    assert 0 <= metric(out, 'coco/segm_mAP') <= 1
