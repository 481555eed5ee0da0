"""Small, deterministic stand-ins for ADE20K and COCO, laid out on disk exactly like the real ones,
so the training and test tools, the demo and the tests run without downloading anything.

Every class has its own colour and texture and objects are large, so a tiny model learns them in a
few hundred iterations. Images depend only on (seed, split, index), never on how many are made.

    python -m mmssm.datasets.synthetic ade20k --out data/synthetic_ade20k
    python -m mmssm.datasets.synthetic coco --out data/synthetic_coco
"""
import argparse
import json
import os
import os.path as osp
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

# ADE20K label ids (0 = "other", ignored after reduce_zero_label) with a colour and a texture that
# loosely follow the real class: wall, building, sky, floor, tree, road, grass, water.
ADE20K_CLASSES = {
    1: ((200, 190, 170), 'flat'),
    2: ((150, 80, 60), 'checker'),
    3: ((90, 160, 235), 'flat'),
    4: ((160, 120, 70), 'stripes_h'),
    5: ((30, 110, 40), 'dots'),
    7: ((70, 70, 75), 'stripes_v'),
    10: ((90, 200, 60), 'stripes_d'),
    22: ((20, 60, 160), 'stripes_h'),
}
# COCO-style categories: each has one shape and one colour family
COCO_CATEGORIES = (
    ('disc', (220, 60, 50), 'ellipse'),
    ('block', (50, 180, 70), 'box'),
    ('wedge', (60, 90, 220), 'triangle'),
)
SPLITS = {'ade20k': ('training', 'validation'), 'coco': ('train2017', 'val2017')}
_DONE = '.complete'
# written before anything else, holding the kind: the folder is this generator's to (over)write
_MADE = '.mmssm-synthetic'
# the backbones downsample by up to 32: a smaller image has no pixel left in their last stage
MIN_SIZE = 32


def _texture(kind, colour, size, rng):
    """An RGB image of one class's colour modulated by its texture, plus sensor-like noise."""
    y, x = np.mgrid[:size, :size]
    period = 8
    pattern = {
        'flat': np.zeros((size, size)),
        'checker': ((x // period + y // period) % 2) * 2 - 1.0,
        'stripes_h': np.sin(2 * np.pi * y / period),
        'stripes_v': np.sin(2 * np.pi * x / period),
        'stripes_d': np.sin(2 * np.pi * (x + y) / period),
        'dots': (np.hypot(x % period - period / 2, y % period - period / 2) < 2) * 2 - 1.0,
    }[kind]
    img = np.asarray(colour, np.float32) + 25 * pattern[..., None]
    return img + rng.normal(0, 10, img.shape)


def _polygon(shape, cx, cy, rx, ry, angle):
    """Vertices [(x, y), ...] of a shape centred at (cx, cy) with half-extents (rx, ry)."""
    t = {
        'ellipse': np.linspace(0, 2 * np.pi, 24, endpoint=False),
        'box': np.array([0.25, 0.75, 1.25, 1.75]) * np.pi,
        'triangle': np.array([1 / 2, 7 / 6, 11 / 6]) * np.pi,
    }[shape]
    px, py = rx * np.cos(t), ry * np.sin(t)
    c, s = np.cos(angle), np.sin(angle)
    return list(zip(cx + c * px - s * py, cy + s * px + c * py))


def _fill(polygon, size):
    mask = Image.new('L', (size, size), 0)
    ImageDraw.Draw(mask).polygon(polygon, fill=1)
    return np.asarray(mask, bool)


def _ade20k_sample(rng, size):
    ids = rng.choice(list(ADE20K_CLASSES), size=rng.integers(3, 6), replace=False)
    label = np.full((size, size), ids[0], np.uint8)
    for cls in ids[1:]:
        shape = rng.choice(['ellipse', 'box', 'triangle'])
        cx, cy = rng.uniform(0.2, 0.8, 2) * size
        rx, ry = rng.uniform(0.15, 0.4, 2) * size
        poly = _polygon(shape, cx, cy, rx, ry, rng.uniform(0, np.pi))
        label[_fill(poly, size)] = cls
        # an unlabelled outline, like ADE20K's object boundaries, exercises the ignore index
        outline = Image.fromarray(label)
        ImageDraw.Draw(outline).polygon(poly, outline=0, width=2)
        label = np.asarray(outline).copy()
    img = np.zeros((size, size, 3), np.float32)
    for cls in ids:
        colour, kind = ADE20K_CLASSES[cls]
        mask = label == cls
        img[mask] = _texture(kind, colour, size, rng)[mask]
    boundary = label == 0
    img[boundary] = rng.uniform(0, 255, (boundary.sum(), 3))
    return np.clip(img, 0, 255).astype(np.uint8), label


def _coco_sample(rng, size):
    """An image with 1-4 non-overlapping objects, one per quadrant, and their annotations."""
    img = _texture('flat', (128, 128, 128), size, rng) + rng.normal(0, 20, (size, size, 3))
    cell = size / 2
    occupied = rng.random(4) < 0.6
    occupied[rng.integers(4)] = True
    objects = []
    for quadrant in np.flatnonzero(occupied):
        cat = rng.integers(len(COCO_CATEGORIES))
        _, colour, shape = COCO_CATEGORIES[cat]
        cx = (quadrant % 2 + 0.5) * cell
        cy = (quadrant // 2 + 0.5) * cell
        # the radius bound keeps every rotated shape inside its own quadrant
        rx = rng.uniform(0.3, 0.45) * cell
        ry = rx * rng.uniform(0.7, 1.0)
        poly = _polygon(shape, cx, cy, rx, ry, rng.uniform(0, np.pi))
        mask = _fill(poly, size)
        img[mask] = np.asarray(colour) + rng.normal(0, 10, (mask.sum(), 3))
        objects.append((int(cat) + 1, poly, mask))
    return np.clip(img, 0, 255).astype(np.uint8), objects


def _coco_annotation(ann_id, img_id, cat_id, poly, mask):
    ys, xs = np.nonzero(mask)
    x0, y0 = float(xs.min()), float(ys.min())
    return dict(
        id=ann_id, image_id=img_id, category_id=cat_id, iscrowd=0, area=float(mask.sum()),
        bbox=[x0, y0, float(xs.max()) + 1 - x0, float(ys.max()) + 1 - y0],
        segmentation=[[round(float(v), 2) for point in poly for v in point]])


def _rng(seed, split_index, index):
    return np.random.default_rng([seed, split_index, index])


def make_ade20k(out, num_train=200, num_val=40, size=128, seed=0):
    """images/{training,validation}/*.jpg and annotations/{training,validation}/*.png."""
    out = Path(out)
    for split_index, (split, num) in enumerate(zip(SPLITS['ade20k'], (num_train, num_val))):
        (out / 'images' / split).mkdir(parents=True, exist_ok=True)
        (out / 'annotations' / split).mkdir(parents=True, exist_ok=True)
        for i in range(num):
            img, label = _ade20k_sample(_rng(seed, split_index, i), size)
            name = f'ADE_{split[:5]}_{i:08d}'
            Image.fromarray(img).save(out / 'images' / split / f'{name}.jpg', quality=95)
            Image.fromarray(label).save(out / 'annotations' / split / f'{name}.png')


def make_coco(out, num_train=120, num_val=24, size=256, seed=0):
    """{train2017,val2017}/*.jpg and annotations/instances_{train2017,val2017}.json."""
    out = Path(out)
    (out / 'annotations').mkdir(parents=True, exist_ok=True)
    categories = [dict(id=i + 1, name=name) for i, (name, _, _) in enumerate(COCO_CATEGORIES)]
    for split_index, (split, num) in enumerate(zip(SPLITS['coco'], (num_train, num_val))):
        (out / split).mkdir(parents=True, exist_ok=True)
        images, annotations = [], []
        for i in range(num):
            img, objects = _coco_sample(_rng(seed, split_index, i), size)
            img_id = i + 1
            file_name = f'{img_id:012d}.jpg'
            Image.fromarray(img).save(out / split / file_name, quality=95)
            images.append(dict(id=img_id, file_name=file_name, width=size, height=size))
            for cat_id, poly, mask in objects:
                annotations.append(
                    _coco_annotation(len(annotations) + 1, img_id, cat_id, poly, mask))
        with open(out / 'annotations' / f'instances_{split}.json', 'w') as f:
            json.dump(dict(images=images, annotations=annotations, categories=categories), f)


MAKERS = {'ade20k': make_ade20k, 'coco': make_coco}


def _kind_in(out):
    """The kind of synthetic data set ``out`` holds, from its markers ('' if unknown)."""
    for marker in (_MADE, _DONE):
        path = osp.join(out, marker)
        if osp.isfile(path):
            with open(path) as f:
                text = f.read().strip()
            kind = json.loads(text).get('kind', '') if text.startswith('{') else text
            if kind:
                return kind
    return ''


def _check_sizes(num_train=1, num_val=1, size=MIN_SIZE, seed=0):
    for option, value, least in (('--num-train', num_train, 1), ('--num-val', num_val, 1),
                                 ('--size', size, MIN_SIZE)):
        if isinstance(value, bool) or not isinstance(value, int) or value < least:
            raise ValueError(f'{option} must be a whole number of at least {least}, got {value!r}'
                             + (' (the backbones downsample by 32)' if option == '--size' else
                                ' (training and validation each need an image)'))


def make(kind, out, force=False, **kwargs):
    """Generates the data set unless a complete one is already in ``out``; returns whether it
    generated. The completion marker is written last, so an interrupted run is redone. A non-empty
    folder the generator did not make (real data, perhaps) is refused unless ``force``, and so is
    one holding the other kind."""
    _check_sizes(**kwargs)
    done = osp.join(out, _DONE)
    other = _kind_in(out)
    if other and other != kind and not force:
        raise FileExistsError(
            f'{out} holds a synthetic {other} data set: writing {kind} into it would mix the two '
            f'layouts. Choose another folder, e.g. --out data/synthetic_{kind}')
    if osp.exists(done):
        return False
    if osp.isdir(out) and os.listdir(out) and not osp.exists(osp.join(out, _MADE)) and not force:
        raise FileExistsError(
            f'{out} is not empty and was not made by this generator: writing the synthetic data '
            f'there would overwrite what it holds (a real data set?). Choose a new folder, e.g. '
            f'--out data/synthetic_{kind}, or pass --force to write into it anyway')
    os.makedirs(out, exist_ok=True)
    with open(osp.join(out, _MADE), 'w') as f:
        f.write(kind)
    MAKERS[kind](out, **kwargs)
    with open(done, 'w') as f:
        json.dump(dict(kind=kind, **kwargs), f)
    return True


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('kind', choices=sorted(MAKERS))
    parser.add_argument('--out', required=True, help='data root to create')
    parser.add_argument('--num-train', type=int, help='training images')
    parser.add_argument('--num-val', type=int, help='validation images')
    parser.add_argument('--size', type=int, help='image side in pixels')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--force', action='store_true',
                        help='write into a non-empty folder that this generator did not make')
    args = parser.parse_args(argv)
    options = {k: v for k, v in vars(args).items() if k not in ('kind', 'out') and v is not None}
    try:
        made = make(args.kind, args.out, **options)
    except (FileExistsError, ValueError) as error:
        raise SystemExit(f'error: {error}') from None
    if made:
        print(f'Wrote a synthetic {args.kind} data set to {args.out}')
    else:
        print(f'{args.out} already holds a synthetic data set (delete it to regenerate)')


if __name__ == '__main__':
    main()
