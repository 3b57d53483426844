"""Write small, deterministic, learnable synthetic demo data sets.

Three data sets of randomly placed geometric shapes on noisy backgrounds, in the
standard on-disk formats used by the demo configs::

    OUT_DIR/imagenet/{train,val}/<class>/<NNN>.JPEG      ImageNet-style class folders
    OUT_DIR/imagenet/meta/{train,val}.txt                 "circle/000.JPEG 0" lines
    OUT_DIR/imagenet/classes.txt                          circle, cross, square, triangle
    OUT_DIR/coco/{train2017,val2017}/<12 digits>.jpg      COCO detection images
    OUT_DIR/coco/annotations/instances_{train,val}2017.json
    OUT_DIR/ade/ADEChallengeData2016/{images,annotations}/{training,validation}/
                                                          ADE_{train,val}_<8 digits>.{jpg,png}
    OUT_DIR/demo_data.json                                stamp: arguments and counts

Only numpy, OpenCV and the standard library are used. The same ``--seed`` gives
byte-identical files; a complete set made with the same arguments is kept unless
``--force`` is given.

Usage::

    python tools/misc/make_demo_data.py data/demo [--seed 0] [--force]
"""
import argparse
import json
import os
import os.path as osp
import shutil
import sys
import time

import cv2
import numpy as np

STAMP_NAME = 'demo_data.json'
FORMAT_VERSION = 1
JPEG_PARAMS = [int(cv2.IMWRITE_JPEG_QUALITY), 95]

# Classification: label order == sorted class names (mmpretrain CustomDataset
# assigns labels from the sorted folder names).
CLS_CLASSES = ('circle', 'cross', 'square', 'triangle')
CLS_SIZE = 64
CLS_NUM_TRAIN = 400  # per class: few enough images are memorised (colours) before shapes are learnt
CLS_NUM_VAL = 25  # per class

# COCO detection: category ids 1, 2, 3.
DET_CLASSES = ('circle', 'square', 'triangle')
DET_SIZE = 128
DET_NUM_TRAIN = 96
DET_NUM_VAL = 24
DET_VAL_ID_OFFSET = 10000  # val image ids are 10001.. (disjoint from train)

# ADE20K-style segmentation: 0 = unlabeled border (ignored via reduce_zero_label),
# 1 = noisy "wall" background, 2/3/4 = circle/square/triangle.
SEG_LABELS = {'other': 0, 'background': 1, 'circle': 2, 'square': 3, 'triangle': 4}
SEG_SIZE = (96, 96)  # (width, height)
SEG_SMALL_SIZE = (96, 72)  # every 4th image
SEG_NUM_TRAIN = 64
SEG_NUM_VAL = 16
SEG_BORDER = 2  # pixels of label 0 around the image


# --------------------------------------------------------------------------- helpers
def shape_polygon(kind, cx, cy, size, angle=0.0):
    """Integer (N, 2) polygon of a shape centred at (cx, cy).

    ``size`` is the nominal extent: the diameter of a circle, the side of a square
    or of an equilateral triangle, the arm span of a cross. ``angle`` in radians.
    """
    if kind == 'circle':
        t = np.linspace(0, 2 * np.pi, 48, endpoint=False)
        pts = np.stack([np.cos(t), np.sin(t)], axis=1) * (size / 2)
    elif kind == 'square':
        h = size / 2
        pts = np.array([[-h, -h], [h, -h], [h, h], [-h, h]])
    elif kind == 'triangle':
        r = size / np.sqrt(3)  # circumradius of an equilateral triangle of side `size`
        t = -np.pi / 2 + np.array([0, 2, 4]) * np.pi / 3
        pts = np.stack([np.cos(t), np.sin(t)], axis=1) * r
    elif kind == 'cross':
        a, b = size / 2, size / 6
        pts = np.array([[-b, -a], [b, -a], [b, -b], [a, -b], [a, b], [b, b], [b, a],
                        [-b, a], [-b, b], [-a, b], [-a, -b], [-b, -b]])
    else:
        raise ValueError(f'unknown shape {kind!r}')
    c, s = np.cos(angle), np.sin(angle)
    pts = pts @ np.array([[c, s], [-s, c]]) + np.array([cx, cy])
    return np.round(pts).astype(np.int32)


def noisy_background(rng, height, width, mean=None, sigma=None):
    """Float RGB image: a random mean colour plus gaussian noise."""
    if mean is None:
        mean = rng.uniform(30, 225, size=3)
    if sigma is None:
        sigma = rng.uniform(5, 20)
    return np.asarray(mean, np.float64) + rng.normal(0, sigma, size=(height, width, 3))


def contrasting_colour(rng, background, min_dist=80.0):
    """A random RGB colour at least ``min_dist`` (max channel difference) from ``background``."""
    while True:
        colour = rng.uniform(0, 255, size=3)
        if np.abs(colour - background).max() >= min_dist:
            return colour


def to_uint8(img):
    return np.clip(np.round(img), 0, 255).astype(np.uint8)


def write_jpeg(path, rgb):
    if not cv2.imwrite(path, cv2.cvtColor(to_uint8(rgb), cv2.COLOR_RGB2BGR), JPEG_PARAMS):
        raise OSError(f'could not write {path}')


def write_png(path, mask):
    assert mask.dtype == np.uint8 and mask.ndim == 2
    if not cv2.imwrite(path, mask):
        raise OSError(f'could not write {path}')


def fill_mask(polygon, height, width):
    mask = np.zeros((height, width), np.uint8)
    cv2.fillPoly(mask, [polygon], 1)
    return mask.astype(bool)


def poly_bbox(polygon):
    """Tight (x0, y0, x1, y1) of an integer polygon (inclusive pixel corners)."""
    x0, y0 = polygon.min(axis=0)
    x1, y1 = polygon.max(axis=0)
    return int(x0), int(y0), int(x1), int(y1)


def place_shapes(rng, kinds, width, height, size_range, rotate, margin=0, gap=3,
                 max_tries=200):
    """Place non-overlapping shapes; returns [(kind, polygon)].

    Bounding boxes of the placed shapes keep ``gap`` pixels between each other and
    ``margin`` pixels from the image edges. Shapes that do not fit are dropped,
    except the first one, which is shrunk until it fits.
    """
    placed, boxes = [], []
    for i, kind in enumerate(kinds):
        for _ in range(max_tries):
            size = rng.uniform(*size_range)
            angle = rng.uniform(0, 2 * np.pi) if rotate(kind) else 0.0
            half = size * 0.6  # enough for every shape's extent around its centre
            lo_x, hi_x = margin + half, width - 1 - margin - half
            lo_y, hi_y = margin + half, height - 1 - margin - half
            if lo_x >= hi_x or lo_y >= hi_y:
                continue
            poly = shape_polygon(kind, rng.uniform(lo_x, hi_x), rng.uniform(lo_y, hi_y),
                                 size, angle)
            x0, y0, x1, y1 = poly_bbox(poly)
            if x0 < margin or y0 < margin or x1 > width - 1 - margin or \
                    y1 > height - 1 - margin:
                continue
            if any(x0 <= bx1 + gap and bx0 <= x1 + gap and y0 <= by1 + gap and
                   by0 <= y1 + gap for bx0, by0, bx1, by1 in boxes):
                continue
            placed.append((kind, poly))
            boxes.append((x0, y0, x1, y1))
            break
        else:
            if i == 0:  # always keep at least one shape
                return place_shapes(rng, kinds, width, height,
                                    (size_range[0] * 0.8, size_range[1] * 0.8), rotate,
                                    margin, gap, max_tries)
    return placed


def _clean_dir(path):
    if osp.isdir(path):
        shutil.rmtree(path)


# --------------------------------------------------------------------------- classification
def make_classification(root, rng, num_train=CLS_NUM_TRAIN, num_val=CLS_NUM_VAL):
    """ImageNet-style folders under ``root/imagenet``; returns the image counts per split."""
    base = osp.join(root, 'imagenet')
    _clean_dir(base)
    os.makedirs(osp.join(base, 'meta'))
    with open(osp.join(base, 'classes.txt'), 'w') as f:
        f.write(''.join(f'{name}\n' for name in CLS_CLASSES))
    counts = {}
    for split, num in (('train', num_train), ('val', num_val)):
        lines = []
        for label, name in enumerate(CLS_CLASSES):
            os.makedirs(osp.join(base, split, name))
            for i in range(num):
                img = noisy_background(rng, CLS_SIZE, CLS_SIZE)
                bg_mean = img.mean(axis=(0, 1))
                size = rng.uniform(0.3, 0.6) * CLS_SIZE
                half = size * 0.6
                poly = shape_polygon(name, rng.uniform(half, CLS_SIZE - 1 - half),
                                     rng.uniform(half, CLS_SIZE - 1 - half), size,
                                     rng.uniform(0, 2 * np.pi))
                mask = fill_mask(poly, CLS_SIZE, CLS_SIZE)
                colour = contrasting_colour(rng, bg_mean)
                img[mask] += colour - bg_mean  # keep the noise texture on the shape
                rel = f'{name}/{i:03d}.JPEG'
                write_jpeg(osp.join(base, split, rel), img)
                lines.append(f'{rel} {label}\n')
        with open(osp.join(base, 'meta', f'{split}.txt'), 'w') as f:
            f.write(''.join(lines))
        counts[split] = len(lines)
    return counts


# --------------------------------------------------------------------------- detection
def _coco_split(base, split, num, id_offset, rng):
    img_dir = osp.join(base, f'{split}2017')
    os.makedirs(img_dir)
    images, annotations = [], []
    for i in range(num):
        img_id = id_offset + i + 1
        file_name = f'{img_id:012d}.jpg'
        img = noisy_background(rng, DET_SIZE, DET_SIZE)
        bg_mean = img.mean(axis=(0, 1))
        n = int(rng.integers(1, 4))
        kinds = [DET_CLASSES[k] for k in rng.integers(0, len(DET_CLASSES), size=n)]
        shapes = place_shapes(rng, kinds, DET_SIZE, DET_SIZE, (28, 56),
                              rotate=lambda k: k == 'triangle', margin=1)
        for kind, poly in shapes:
            mask = fill_mask(poly, DET_SIZE, DET_SIZE)
            img[mask] += contrasting_colour(rng, bg_mean) - bg_mean
            x0, y0, x1, y1 = poly_bbox(poly)
            annotations.append(dict(
                id=len(annotations) + 1,
                image_id=img_id,
                category_id=DET_CLASSES.index(kind) + 1,
                bbox=[float(x0), float(y0), float(x1 - x0), float(y1 - y0)],
                area=float(mask.sum()),
                iscrowd=0,
                segmentation=[[float(v) for v in poly.reshape(-1)]],
            ))
        write_jpeg(osp.join(img_dir, file_name), img)
        images.append(dict(id=img_id, file_name=file_name, width=DET_SIZE, height=DET_SIZE))
    coco = dict(
        info=dict(description='emo synthetic shapes demo data (COCO format)', version='1.0',
                  year=2024, contributor='tools/misc/make_demo_data.py'),
        licenses=[],
        images=images,
        annotations=annotations,
        categories=[dict(id=k + 1, name=name, supercategory='shape')
                    for k, name in enumerate(DET_CLASSES)],
    )
    with open(osp.join(base, 'annotations', f'instances_{split}2017.json'), 'w') as f:
        json.dump(coco, f)
    return len(images), len(annotations)


def make_coco(root, rng, num_train=DET_NUM_TRAIN, num_val=DET_NUM_VAL):
    """COCO detection set under ``root/coco``; returns image and instance counts."""
    base = osp.join(root, 'coco')
    _clean_dir(base)
    os.makedirs(osp.join(base, 'annotations'))
    counts = {}
    for split, num, offset in (('train', num_train, 0), ('val', num_val, DET_VAL_ID_OFFSET)):
        n_img, n_ann = _coco_split(base, split, num, offset, rng)
        counts[split] = n_img
        counts[f'{split}_instances'] = n_ann
    return counts


# --------------------------------------------------------------------------- segmentation
def _seg_texture(kind, rng, height, width):
    """Float RGB texture for a label; each class has its own colour scheme / pattern."""
    yy, xx = np.mgrid[0:height, 0:width]
    if kind == 'background':  # greyish "wall" with coarse noise
        grey = rng.uniform(80, 170)
        mean = grey + rng.uniform(-15, 15, size=3)
        return noisy_background(rng, height, width, mean=mean, sigma=10)
    if kind == 'circle':  # red, horizontal stripes
        mean = np.array([rng.uniform(180, 245), rng.uniform(20, 80), rng.uniform(20, 80)])
        stripes = 30 * np.sign(np.sin(2 * np.pi * (yy + rng.uniform(0, 6)) / 6))
        return mean + stripes[..., None] + rng.normal(0, 6, size=(height, width, 3))
    if kind == 'square':  # green, checkerboard
        mean = np.array([rng.uniform(20, 80), rng.uniform(160, 230), rng.uniform(20, 80)])
        checker = 30 * (((yy // 4) + (xx // 4)) % 2 * 2 - 1)
        return mean + checker[..., None] + rng.normal(0, 6, size=(height, width, 3))
    if kind == 'triangle':  # blue, smooth
        mean = np.array([rng.uniform(20, 80), rng.uniform(40, 110), rng.uniform(170, 245)])
        return mean + rng.normal(0, 5, size=(height, width, 3))
    raise ValueError(kind)


def make_ade(root, rng, num_train=SEG_NUM_TRAIN, num_val=SEG_NUM_VAL):
    """ADE20K-style set under ``root/ade/ADEChallengeData2016``; returns counts per split."""
    base = osp.join(root, 'ade')
    _clean_dir(base)
    base = osp.join(base, 'ADEChallengeData2016')
    shape_kinds = ('circle', 'square', 'triangle')
    counts = {}
    for split, prefix, num in (('training', 'train', num_train),
                               ('validation', 'val', num_val)):
        img_dir = osp.join(base, 'images', split)
        ann_dir = osp.join(base, 'annotations', split)
        os.makedirs(img_dir)
        os.makedirs(ann_dir)
        for i in range(num):
            width, height = SEG_SMALL_SIZE if i % 4 == 3 else SEG_SIZE
            img = _seg_texture('background', rng, height, width)
            label = np.full((height, width), SEG_LABELS['background'], np.uint8)
            # The first shape cycles through the kinds so every class occurs in every split.
            n = int(rng.integers(1, 4))
            kinds = [shape_kinds[i % 3]] + [shape_kinds[k] for k in rng.integers(0, 3, n - 1)]
            for kind, poly in place_shapes(rng, kinds, width, height, (20, 44),
                                           rotate=lambda k: k != 'circle',
                                           margin=SEG_BORDER + 1, gap=2):
                mask = fill_mask(poly, height, width)
                img[mask] = _seg_texture(kind, rng, height, width)[mask]
                label[mask] = SEG_LABELS[kind]
            # Thin dark frame, labelled 0 ("other"), ignored after reduce_zero_label.
            b = SEG_BORDER
            frame = np.ones((height, width), bool)
            frame[b:-b, b:-b] = False
            img[frame] = rng.uniform(0, 30, size=3)
            label[frame] = SEG_LABELS['other']
            stem = f'ADE_{prefix}_{i + 1:08d}'
            write_jpeg(osp.join(img_dir, stem + '.jpg'), img)
            write_png(osp.join(ann_dir, stem + '.png'), label)
        counts[prefix] = num
    return counts


# --------------------------------------------------------------------------- driver
def expected_stamp(seed):
    """Stamp content (arguments and counts) of a complete set made with ``seed``."""
    return dict(
        format_version=FORMAT_VERSION,
        seed=seed,
        imagenet=dict(classes=list(CLS_CLASSES), train=CLS_NUM_TRAIN * len(CLS_CLASSES),
                      val=CLS_NUM_VAL * len(CLS_CLASSES), size=[CLS_SIZE, CLS_SIZE]),
        coco=dict(classes=list(DET_CLASSES), train=DET_NUM_TRAIN, val=DET_NUM_VAL,
                  size=[DET_SIZE, DET_SIZE]),
        ade=dict(labels=SEG_LABELS, train=SEG_NUM_TRAIN, val=SEG_NUM_VAL,
                 sizes=[list(SEG_SIZE), list(SEG_SMALL_SIZE)]),
    )


def _count_files(path, suffix):
    if not osp.isdir(path):
        return -1
    return sum(f.endswith(suffix) for _, _, files in os.walk(path) for f in files)


def is_complete(out_dir, seed):
    """Whether ``out_dir`` holds a complete set made with the same arguments."""
    stamp_path = osp.join(out_dir, STAMP_NAME)
    if not osp.isfile(stamp_path):
        return False
    try:
        with open(stamp_path) as f:
            stamp = json.load(f)
    except (OSError, ValueError):
        return False
    exp = expected_stamp(seed)
    if {k: stamp.get(k) for k in exp} != json.loads(json.dumps(exp)):
        return False
    ade = osp.join(out_dir, 'ade', 'ADEChallengeData2016')
    checks = [
        (osp.join(out_dir, 'imagenet', 'train'), '.JPEG', exp['imagenet']['train']),
        (osp.join(out_dir, 'imagenet', 'val'), '.JPEG', exp['imagenet']['val']),
        (osp.join(out_dir, 'coco', 'train2017'), '.jpg', DET_NUM_TRAIN),
        (osp.join(out_dir, 'coco', 'val2017'), '.jpg', DET_NUM_VAL),
        (osp.join(ade, 'images', 'training'), '.jpg', SEG_NUM_TRAIN),
        (osp.join(ade, 'images', 'validation'), '.jpg', SEG_NUM_VAL),
        (osp.join(ade, 'annotations', 'training'), '.png', SEG_NUM_TRAIN),
        (osp.join(ade, 'annotations', 'validation'), '.png', SEG_NUM_VAL),
    ]
    return all(_count_files(p, s) == n for p, s, n in checks) and all(
        osp.isfile(osp.join(out_dir, 'coco', 'annotations', f'instances_{s}2017.json'))
        for s in ('train', 'val'))


def make_all(out_dir, seed=0):
    """Write all three sets into ``out_dir`` and the stamp; returns the stamp dict."""
    os.makedirs(out_dir, exist_ok=True)
    stamp_path = osp.join(out_dir, STAMP_NAME)
    if osp.exists(stamp_path):
        os.remove(stamp_path)  # an interrupted run must not look complete
    # Independent streams, so each set does not depend on the size of the others.
    rng_cls, rng_det, rng_seg = (np.random.default_rng(s)
                                 for s in np.random.SeedSequence(seed).spawn(3))
    stamp = expected_stamp(seed)
    stamp['written'] = dict(imagenet=make_classification(out_dir, rng_cls),
                            coco=make_coco(out_dir, rng_det),
                            ade=make_ade(out_dir, rng_seg))
    with open(stamp_path, 'w') as f:
        json.dump(stamp, f, indent=2, sort_keys=True)
        f.write('\n')
    return stamp


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Write small deterministic synthetic demo data sets (ImageNet-style '
        'classification folders, COCO detection, ADE20K-style segmentation) into OUT_DIR.')
    parser.add_argument('out_dir', metavar='OUT_DIR',
                        help='output folder; gets imagenet/, coco/, ade/ and ' + STAMP_NAME)
    parser.add_argument('--seed', type=int, default=0,
                        help='random seed; the same seed gives byte-identical files '
                        '(default: 0)')
    parser.add_argument('--force', action='store_true',
                        help='regenerate even if OUT_DIR already holds a complete set '
                        'made with the same arguments')
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    if not args.force and is_complete(args.out_dir, args.seed):
        print(f'[make_demo_data] {args.out_dir} already holds the demo data '
              f'(seed {args.seed}); skipping (use --force to regenerate)')
        return 0
    start = time.time()
    stamp = make_all(args.out_dir, args.seed)
    print(f'[make_demo_data] wrote {args.out_dir} in {time.time() - start:.1f}s: '
          f"imagenet {stamp['written']['imagenet']}, coco {stamp['written']['coco']}, "
          f"ade {stamp['written']['ade']}")
    return 0


if __name__ == '__main__':
    sys.exit(main())
