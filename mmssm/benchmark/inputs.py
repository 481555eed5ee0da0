"""Synthetic batches, the same for every model of a run: images as a backbone takes them, and
packed data (uint8 images + data samples with random ground truth) as a segmentor's or a
detector's train_step / test_step take them."""
import torch


def images(batch, shape, device, seed=0):
    """Normalised images (batch, 3, H, W), as a data preprocessor hands them to a backbone."""
    g = torch.Generator().manual_seed(seed)
    return torch.randn(batch, 3, *shape, generator=g).to(device)


def packed_batch(task, batch, shape, num_classes, device, seed=0):
    """{'inputs': [uint8 (3, H, W)] * batch, 'data_samples': [...]} for ``task`` ('mmseg' or
    'mmdet'), images and data samples on ``device`` so that no host copy is timed."""
    if task == 'mmdet':
        from mmdet.testing import demo_mm_inputs
        data = demo_mm_inputs(batch, (3, *shape), num_classes=num_classes, with_mask=True,
                              device=device)
        data['inputs'] = [img.to(device) for img in data['inputs']]
        return data
    from mmengine.structures import PixelData
    from mmseg.structures import SegDataSample
    g = torch.Generator().manual_seed(seed)
    inputs, samples = [], []
    for _ in range(batch):
        inputs.append(torch.randint(0, 256, (3, *shape), generator=g, dtype=torch.uint8).to(device))
        sample = SegDataSample(metainfo=dict(img_shape=shape, ori_shape=shape, pad_shape=shape))
        labels = torch.randint(0, num_classes, (1, *shape), generator=g)
        sample.gt_sem_seg = PixelData(data=labels.to(device))
        samples.append(sample)
    return dict(inputs=inputs, data_samples=samples)
