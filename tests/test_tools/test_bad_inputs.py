"""Bad inputs get errors that name the file and the problem; odd but valid inputs work.

Checkpoints through ``tools/test.py`` (official layout, another variant, broken files),
images (corrupt, empty; grayscale, RGBA, 16-bit PNG), segmentation label maps, COCO
categories."""
import json
import os.path as osp
import pickle
import shutil
from types import SimpleNamespace

import cv2
import numpy as np
import pytest
import torch
from helpers import REPO, run_tool
from mmengine.config import Config
from mmengine.dataset import default_collate
from mmengine.registry import DATASETS, init_default_scope
from mmengine.runner import BaseLoop
from reference_emo import ReferenceEMO, randomize_

import emo  # noqa: F401
from emo.apis import build_model_from_cfg
from emo.engine import ImageLoadError
from emo.engine.hooks import DataCheckHook

pytestmark = pytest.mark.usefixtures('single_thread')
CLS = 'configs/demo/emo-1m_demo_cls.py'
SEG = 'configs/demo/deeplabv3_emo-1m_demo_ade20k.py'
DET = 'configs/demo/ssdlite_emo-1m_demo_coco.py'


def cls_options(root, work):
    return ['--work-dir', str(work), '--cfg-options',
            f'test_dataloader.dataset.data_root={root}', 'test_dataloader.dataset.indices=24']


def official_file(path, arch='1m', seed=0):
    torch.save(randomize_(ReferenceEMO(arch, num_classes=4), seed=seed).state_dict(), path)
    return str(path)


def test_official_file_given_to_test_py_equals_the_converted_file(demo_data_root, tmp_path):
    root = osp.join(demo_data_root, 'imagenet')
    official = official_file(tmp_path / 'net.pth')
    converted = str(tmp_path / 'converted.pth')
    run_tool('tools/model_converters/emo_to_mmpretrain.py', official, converted, '--arch', '1m')
    results = {}
    for name, ckpt in (('official', official), ('converted', converted)):
        out = str(tmp_path / f'{name}.pkl')
        proc = run_tool('tools/test.py', CLS, ckpt, '--out', out,
                        *cls_options(root, tmp_path / name))
        metrics = json.load(open(tmp_path / name / 'test_metrics.json'))
        results[name] = (metrics['accuracy/top1'], pickle.load(open(out, 'rb')), proc)
    assert 'an official EMO checkpoint; converted its 217 keys' in results['official'][2].stdout
    assert results['official'][0] == results['converted'][0]
    for a, b in zip(results['official'][1], results['converted'][1]):
        assert torch.equal(a['pred_score'], b['pred_score'])  # same weights, same run


def test_another_variant_is_an_error_naming_the_shapes(demo_data_root, tmp_path):
    other = official_file(tmp_path / 'emo_2m.pth', arch='2m')  # 2M weights, 1M config
    proc = run_tool('tools/test.py', CLS, other,
                    *cls_options(osp.join(demo_data_root, 'imagenet'), tmp_path), check=False)
    assert proc.returncode != 0
    assert f'{other}: ' in proc.stderr and 'tensors do not fit the model' in proc.stderr
    assert 'backbone.stage1.0.conv.conv.weight: checkpoint (' in proc.stderr \
        or 'vs model (' in proc.stderr
    assert 'test metrics' not in proc.stdout  # nothing was evaluated with half the weights


@pytest.mark.parametrize('kind,words', [('empty', 'the file is empty (0 bytes)'),
                                        ('truncated', 'the file is truncated or corrupt')])
def test_broken_checkpoint_given_to_test_py(demo_data_root, tmp_path, kind, words):
    path = tmp_path / f'{kind}.pth'
    if kind == 'truncated':
        data = open(official_file(tmp_path / 'net.pth'), 'rb').read()
        path.write_bytes(data[:len(data) // 2])
    else:
        path.write_bytes(b'')
    proc = run_tool('tools/test.py', CLS, str(path),
                    *cls_options(osp.join(demo_data_root, 'imagenet'), tmp_path), check=False)
    assert proc.returncode != 0
    assert f'CheckpointError: {path}: cannot load the checkpoint: {words}' in proc.stderr


def cls_dataset(root, backend='cv2'):
    cfg = Config.fromfile(osp.join(REPO, CLS))
    init_default_scope(cfg.default_scope)
    pipeline = cfg.test_pipeline
    pipeline[0] = dict(pipeline[0], imdecode_backend=backend)
    return cfg, DATASETS.build(dict(cfg.test_dataloader.dataset, data_root=root,
                                    pipeline=pipeline))


@pytest.mark.parametrize('backend', ['cv2', 'pillow'])
def test_corrupt_and_empty_images_are_named(demo_data_root, tmp_path, backend):
    root = tmp_path / 'imagenet'
    shutil.copytree(osp.join(demo_data_root, 'imagenet', 'val'), root / 'val')
    _, dataset = cls_dataset(str(root), backend)
    for i, content in ((3, b'\xff\xd8 this is not a jpeg'), (5, b'')):
        path = dataset.get_data_info(i)['img_path']
        with open(path, 'wb') as f:
            f.write(content)
        with pytest.raises(ImageLoadError) as err:
            dataset[i]
        assert str(err.value).startswith(f'{path}: cannot load the image')
        assert ('empty (0 bytes)' if not content else 'not a decodable image') in str(err.value)
    dataset[0]  # the others still load


def test_grayscale_rgba_and_16bit_png_work(tmp_path):
    """Each mode is written as a PNG of the same picture and must give the same 3-channel
    input (cv2: exactly; pillow: RGBA blends on white, 16-bit is shifted to 8) and logits."""
    yy, xx = np.mgrid[:64, :64]
    gray8 = ((np.hypot(yy - 32, xx - 32) < 20) * 180 + 30).astype(np.uint8)
    files = {'gray': gray8, 'rgba': np.dstack([gray8] * 3 + [np.full_like(gray8, 255)]),
             'gray16': gray8.astype(np.uint16) * 257}
    for name, img in files.items():
        folder = tmp_path / 'val' / 'circle'
        folder.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(folder / f'{name}.png'), img)
    assert cv2.imread(str(folder / 'gray16.png'), cv2.IMREAD_UNCHANGED).dtype == np.uint16
    for backend in ('cv2', 'pillow'):
        cfg, dataset = cls_dataset(str(tmp_path), backend)
        model = build_model_from_cfg(cfg, mode='train').eval()
        items = [dataset[i] for i in range(len(dataset))]
        for item in items:
            assert item['inputs'].shape == (3, 64, 64)
            torch.testing.assert_close(item['inputs'], items[0]['inputs'], atol=1, rtol=0)
        with torch.no_grad():
            logits = model.test_step(default_collate(items))
        assert len(logits) == 3 and all(torch.isfinite(s.pred_score).all() for s in logits)


def seg_sample(root, index):
    cfg = Config.fromfile(osp.join(REPO, SEG))
    init_default_scope(cfg.default_scope)
    dataset = DATASETS.build(dict(cfg.test_dataloader.dataset, data_root=root))
    return cfg, dataset, dataset[index]


def test_segmentation_labels_beyond_num_classes_are_named(demo_data_root, tmp_path):
    root = tmp_path / 'ade'
    shutil.copytree(osp.join(demo_data_root, 'ade', 'ADEChallengeData2016'), root)
    cfg, dataset, _ = seg_sample(str(root), 0)
    model = build_model_from_cfg(cfg, mode='train')
    runner = SimpleNamespace(model=model)
    hook = DataCheckHook()
    path = dataset.get_data_info(2)['seg_map_path']
    label = cv2.imread(path, cv2.IMREAD_UNCHANGED)
    label[:4, :4] = 255  # stays the ignore index after reduce_zero_label
    cv2.imwrite(path, label)
    hook.before_val_iter(runner, 0, default_collate([dataset[2]]))  # fine
    label[10:12, 10:12] = 200  # -> 199 after reduce_zero_label: not one of 150 classes
    label[20:22, 20:22] = 160
    cv2.imwrite(path, label)
    with pytest.raises(ValueError) as err:
        hook.before_train_iter(runner, 0, default_collate([dataset[1], dataset[2]]))
    assert str(err.value).startswith(f'{path}: label values [159, 199] are not classes')
    assert 'num_classes=150' in str(err.value)


def test_coco_classes_missing_from_the_annotation_file(demo_data_root):
    cfg = Config.fromfile(osp.join(REPO, DET))
    init_default_scope(cfg.default_scope)
    root = osp.join(demo_data_root, 'coco') + '/'
    ds_cfg = dict(cfg.test_dataloader.dataset, data_root=root,
                  metainfo=dict(classes=('circle', 'hexagon', 'triangle', 'Square')))
    dataset = DATASETS.build(ds_cfg)

    class Loop(BaseLoop):
        def run(self):
            pass

    loop = Loop.__new__(Loop)
    loop.dataloader = SimpleNamespace(dataset=dataset)
    with pytest.raises(ValueError) as err:
        DataCheckHook().before_run(SimpleNamespace(_test_loop=loop))
    ann = osp.join(root, 'annotations/instances_val2017.json')
    assert str(err.value).startswith(f"{ann}: the config's classes ['hexagon', 'Square'] "
                                     'are not among')
    loop.dataloader.dataset = DATASETS.build(dict(ds_cfg, metainfo=cfg.metainfo))
    DataCheckHook().before_run(SimpleNamespace(_test_loop=loop))  # the right names pass


def test_converter_names_a_broken_file(tmp_path):
    path = tmp_path / 'net.pth'
    path.write_bytes(b'')
    proc = run_tool('tools/model_converters/emo_to_mmpretrain.py', path, tmp_path / 'out.pth',
                    check=False)
    assert proc.returncode != 0 and f'{path}: cannot load the checkpoint' in proc.stderr


def test_resume_with_no_complete_checkpoint_is_an_error(demo_data_root, tmp_path):
    """tools/train.py --resume: a truncated last checkpoint is skipped; with nothing
    complete to fall back on the run stops, naming the file, instead of starting over."""
    work = tmp_path / 'work'
    work.mkdir()
    data = open(official_file(tmp_path / 'net.pth'), 'rb').read()
    (work / 'epoch_3.pth').write_bytes(data[:1000])
    (work / 'last_checkpoint').write_text(str(work / 'epoch_3.pth'))
    root = osp.join(demo_data_root, 'imagenet')
    proc = run_tool('tools/train.py', CLS, '--work-dir', str(work), '--resume',
                    '--cfg-options', f'train_dataloader.dataset.data_root={root}',
                    f'val_dataloader.dataset.data_root={root}', check=False)
    assert proc.returncode != 0
    assert f'--resume: no complete checkpoint in {work}: {work}/epoch_3.pth: ' \
           'the file is truncated or corrupt' in proc.stderr
