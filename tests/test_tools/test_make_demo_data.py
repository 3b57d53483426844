"""Tests for ``tools/misc/make_demo_data.py`` (the synthetic demo data sets)."""
import json
import os
import os.path as osp
import subprocess
import sys

import cv2
import numpy as np
import pytest
from helpers import load_tool

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
SCRIPT = osp.join(REPO, 'tools', 'misc', 'make_demo_data.py')


mdd = load_tool('tools/misc/make_demo_data.py')
CLS_CLASSES = ['circle', 'cross', 'square', 'triangle']
DET_CLASSES = ['circle', 'square', 'triangle']
N_TRAIN, N_VAL = mdd.CLS_NUM_TRAIN, mdd.CLS_NUM_VAL  # per class


def _tree_bytes(root):
    """{relative path: file bytes} of every file under ``root``."""
    out = {}
    for dirpath, _, files in os.walk(root):
        for name in files:
            path = osp.join(dirpath, name)
            with open(path, 'rb') as f:
                out[osp.relpath(path, root)] = f.read()
    return out


@pytest.fixture(scope='module')
def demo(tmp_path_factory):
    root = str(tmp_path_factory.mktemp('demo') / 'data')
    assert mdd.main([root, '--seed', '0']) == 0
    return root


def test_stamp(demo):
    with open(osp.join(demo, 'demo_data.json')) as f:
        stamp = json.load(f)
    assert stamp['seed'] == 0
    assert stamp['written']['imagenet'] == dict(train=4 * N_TRAIN, val=4 * N_VAL)
    assert stamp['written']['coco']['train'] == 96
    assert stamp['written']['coco']['val'] == 24
    assert stamp['written']['ade'] == dict(train=64, val=16)
    assert mdd.is_complete(demo, 0)
    assert not mdd.is_complete(demo, 1)


def test_classification_layout(demo):
    base = osp.join(demo, 'imagenet')
    with open(osp.join(base, 'classes.txt')) as f:
        classes = f.read().split()
    assert classes == CLS_CLASSES == sorted(CLS_CLASSES)
    for split, per_class in (('train', N_TRAIN), ('val', N_VAL)):
        assert sorted(os.listdir(osp.join(base, split))) == CLS_CLASSES
        with open(osp.join(base, 'meta', f'{split}.txt')) as f:
            lines = [line.split() for line in f.read().splitlines()]
        assert len(lines) == 4 * per_class
        labels = [int(label) for _, label in lines]
        assert np.bincount(labels).tolist() == [per_class] * 4
        for rel, label in lines:
            cls_name, file_name = rel.split('/')
            assert cls_name == CLS_CLASSES[int(label)]
            assert file_name.endswith('.JPEG')
            assert osp.isfile(osp.join(base, split, rel))
        for name in CLS_CLASSES:
            files = os.listdir(osp.join(base, split, name))
            assert len(files) == per_class
            assert all(f.endswith('.JPEG') for f in files)
    img = cv2.imread(osp.join(base, 'train', 'circle', '000.JPEG'), cv2.IMREAD_UNCHANGED)
    assert img.shape == (64, 64, 3) and img.dtype == np.uint8
    # Noisy background: not a flat image.
    assert img.std() > 3


def test_classification_mmpretrain(demo):
    import mmpretrain.datasets.custom as custom
    base = osp.join(demo, 'imagenet')
    # Folder scan: labels come from the sorted folder names.
    ds = custom.CustomDataset(data_root=base, data_prefix='train', pipeline=[])
    assert len(ds) == 4 * N_TRAIN
    assert list(ds.CLASSES) == CLS_CLASSES
    # Annotation files.
    ds = custom.CustomDataset(data_root=base, data_prefix='val', ann_file='meta/val.txt',
                              classes=osp.join(base, 'classes.txt'), pipeline=[])
    assert len(ds) == 4 * N_VAL
    info = ds.get_data_info(20)
    assert osp.basename(osp.dirname(info['img_path'])) == CLS_CLASSES[info['gt_label']]


@pytest.mark.parametrize('split,num', [('train', 96), ('val', 24)])
def test_coco(demo, split, num):
    from pycocotools.coco import COCO
    base = osp.join(demo, 'coco')
    ann_file = osp.join(base, 'annotations', f'instances_{split}2017.json')
    with open(ann_file) as f:
        raw = json.load(f)
    assert {'info', 'licenses', 'images', 'annotations', 'categories'} <= set(raw)
    coco = COCO(ann_file)
    assert sorted(coco.getCatIds()) == [1, 2, 3]
    assert [c['name'] for c in coco.loadCats([1, 2, 3])] == DET_CLASSES
    assert all(c['supercategory'] == 'shape' for c in coco.loadCats([1, 2, 3]))
    img_ids = coco.getImgIds()
    assert len(img_ids) == num
    assert len(os.listdir(osp.join(base, f'{split}2017'))) == num
    seen_cats = set()
    for img_id in img_ids:
        info = coco.loadImgs(img_id)[0]
        assert info['file_name'].endswith('.jpg')
        img = cv2.imread(osp.join(base, f'{split}2017', info['file_name']))
        assert img.shape == (info['height'], info['width'], 3) == (128, 128, 3)
        anns = coco.loadAnns(coco.getAnnIds(imgIds=img_id))
        assert 1 <= len(anns) <= 3
        boxes = []
        for ann in anns:
            x, y, w, h = ann['bbox']
            assert all(isinstance(v, float) for v in ann['bbox'])
            assert 0 <= x and 0 <= y and x + w <= info['width'] and y + h <= info['height']
            assert 20 <= w <= 70 and 20 <= h <= 70
            assert ann['iscrowd'] == 0 and ann['area'] > 0
            # The polygon mask fills a sensible part of its box.
            mask = coco.annToMask(ann)
            assert 0.35 * w * h <= mask.sum() <= (w + 1) * (h + 1)
            seen_cats.add(ann['category_id'])
            boxes.append((x, y, x + w, y + h))
        for i, a in enumerate(boxes):  # non-overlapping
            for b in boxes[i + 1:]:
                assert a[2] < b[0] or b[2] < a[0] or a[3] < b[1] or b[3] < a[1]
    assert seen_cats == {1, 2, 3}


def test_coco_mmdet(demo):
    import mmdet.datasets.coco as coco_mod
    ds = coco_mod.CocoDataset(
        data_root=osp.join(demo, 'coco'), ann_file='annotations/instances_val2017.json',
        data_prefix=dict(img='val2017/'), metainfo=dict(classes=tuple(DET_CLASSES)),
        pipeline=[])
    assert len(ds) == 24
    info = ds.get_data_info(0)
    assert osp.isfile(info['img_path'])
    assert all(0 <= inst['bbox_label'] < 3 for inst in info['instances'])


@pytest.mark.parametrize('split,prefix,num', [('training', 'train', 64),
                                              ('validation', 'val', 16)])
def test_ade(demo, split, prefix, num):
    base = osp.join(demo, 'ade', 'ADEChallengeData2016')
    imgs = sorted(os.listdir(osp.join(base, 'images', split)))
    anns = sorted(os.listdir(osp.join(base, 'annotations', split)))
    assert len(imgs) == len(anns) == num
    assert imgs[0] == f'ADE_{prefix}_00000001.jpg'
    assert [f[:-4] for f in imgs] == [f[:-4] for f in anns]
    assert all(f.endswith('.png') for f in anns)
    shapes, counts = set(), np.zeros(256, np.int64)
    for img_name, ann_name in zip(imgs, anns):
        img = cv2.imread(osp.join(base, 'images', split, img_name))
        mask = cv2.imread(osp.join(base, 'annotations', split, ann_name),
                          cv2.IMREAD_UNCHANGED)
        assert mask.dtype == np.uint8 and mask.ndim == 2
        assert img.shape[:2] == mask.shape
        shapes.add(mask.shape)
        values = set(np.unique(mask).tolist())
        assert values <= {0, 1, 2, 3, 4}
        assert {0, 1} <= values and values & {2, 3, 4}
        counts += np.bincount(mask.ravel(), minlength=256)
    assert shapes == {(96, 96), (72, 96)}  # (height, width)
    assert all(counts[v] > 0 for v in (1, 2, 3, 4))
    assert counts[0] < 0.15 * counts.sum()  # label 0 is only a thin border


def test_ade_mmseg(demo):
    import mmseg.datasets.ade as ade
    ds = ade.ADE20KDataset(
        data_root=osp.join(demo, 'ade', 'ADEChallengeData2016'),
        data_prefix=dict(img_path='images/validation', seg_map_path='annotations/validation'),
        pipeline=[])
    assert len(ds) == 16
    assert ds.reduce_zero_label
    assert ds.metainfo['classes'][:4] == ('wall', 'building', 'sky', 'floor')


def test_deterministic(demo, tmp_path):
    same = str(tmp_path / 'same')
    other = str(tmp_path / 'other')
    mdd.make_all(same, seed=0)
    mdd.make_all(other, seed=1)
    ref = _tree_bytes(demo)
    assert _tree_bytes(same) == ref
    diff = _tree_bytes(other)
    assert diff.keys() == ref.keys()
    for rel in ('imagenet/train/circle/000.JPEG', 'coco/val2017/000000010001.jpg',
                'coco/annotations/instances_train2017.json',
                'ade/ADEChallengeData2016/annotations/training/ADE_train_00000001.png'):
        assert diff[rel] != ref[rel]


def test_functions_with_rng(tmp_path):
    rng = np.random.default_rng(3)
    assert mdd.make_classification(str(tmp_path), rng, num_train=2, num_val=1) == dict(
        train=8, val=4)
    counts = mdd.make_coco(str(tmp_path), rng, num_train=3, num_val=2)
    assert counts['train'] == 3 and counts['val'] == 2
    assert mdd.make_ade(str(tmp_path), rng, num_train=4, num_val=1) == dict(train=4, val=1)
    assert not mdd.is_complete(str(tmp_path), 3)  # no stamp, partial counts


def test_skip_and_force(tmp_path, capsys):
    root = str(tmp_path / 'data')
    assert mdd.main([root]) == 0
    probe = osp.join(root, 'coco', 'train2017', '000000000001.jpg')
    os.utime(probe, ns=(1, 1))
    capsys.readouterr()
    assert mdd.main([root]) == 0
    assert 'skipping' in capsys.readouterr().out
    assert os.stat(probe).st_mtime_ns == 1
    # A different seed is not the same set: regenerated.
    assert mdd.main([root, '--seed', '1']) == 0
    assert 'wrote' in capsys.readouterr().out
    assert os.stat(probe).st_mtime_ns != 1
    os.utime(probe, ns=(1, 1))
    assert mdd.main([root, '--seed', '1', '--force']) == 0
    assert os.stat(probe).st_mtime_ns != 1
    # An incomplete set (missing file) is regenerated as well.
    os.remove(probe)
    assert mdd.main([root, '--seed', '1']) == 0
    assert 'wrote' in capsys.readouterr().out
    assert osp.isfile(probe)


def test_cli_help():
    result = subprocess.run([sys.executable, SCRIPT, '--help'], capture_output=True,
                            text=True, check=True)
    assert 'OUT_DIR' in result.stdout and '--seed' in result.stdout
    assert '--force' in result.stdout
