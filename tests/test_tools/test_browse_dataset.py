"""tools/visualization/browse_dataset.py on the demo data of the three tasks: the drawings
are written through each library's visualizer, one per image, and show the annotations."""
import glob
import os.path as osp

import cv2
import numpy as np
import pytest
from helpers import REPO, load_tool, run_tool

browse = load_tool('tools/visualization/browse_dataset.py')
DEMO = osp.join(REPO, 'configs', 'demo')


def data_options(task, root, phase):
    if task == 'cls':
        return [f'{phase}_dataloader.dataset.data_root={osp.join(root, "imagenet")}']
    if task == 'det':
        coco = osp.join(root, 'coco') + '/'
        key = 'train_dataloader.dataset.dataset' if phase == 'train' else \
            f'{phase}_dataloader.dataset'
        return [f'{key}.data_root={coco}']
    return [f'{phase}_dataloader.dataset.data_root='
            f'{osp.join(root, "ade", "ADEChallengeData2016")}']


CASES = [('cls', 'emo-1m_demo_cls.py', 'train', (64, 64)),
         ('cls', 'emo-1m_demo_cls.py', 'val', (64, 64)),
         ('det', 'ssdlite_emo-1m_demo_coco.py', 'train', (128, 128)),
         ('det', 'ssdlite_emo-1m_demo_coco.py', 'val', (128, 128)),
         ('seg', 'deeplabv3_emo-1m_demo_ade20k.py', 'train', (96, 96)),
         ('seg', 'deeplabv3_emo-1m_demo_ade20k.py', 'test', None)]


@pytest.mark.parametrize('task,config,phase,shape', CASES)
def test_draws_the_pipeline_output(demo_data_root, tmp_path, capsys, task, config, phase,
                                   shape):
    out = str(tmp_path / 'vis')
    browse.main([osp.join(DEMO, config), '--output-dir', out, '--phase', phase,
                 '--show-number', '3', '--cfg-options',
                 *data_options(task, demo_data_root, phase)])
    files = sorted(glob.glob(osp.join(out, '*')))
    assert [osp.basename(f)[:6] for f in files] == ['00000_', '00001_', '00002_']
    assert 'drew 3 of the' in capsys.readouterr().out
    for f in files:
        drawn = cv2.imread(f)
        if shape is not None:  # the pipeline's output size: crops / fixed resizes
            assert drawn.shape[:2] == shape, f
        else:  # seg test pipeline: short side resized to 192 (scale (768, 192))
            assert min(drawn.shape[:2]) == 192, f


def drawn_pixels(image, drawing, threshold=40):
    """Fraction of pixels the visualizer changed by more than ``threshold``."""
    diff = np.abs(image.astype(int) - drawing.astype(int))
    return float(np.mean(np.any(diff > threshold, -1)))


@pytest.mark.parametrize('task,config', [('det', 'ssdlite_emo-1m_demo_coco.py'),
                                         ('seg', 'deeplabv3_emo-1m_demo_ade20k.py')])
def test_annotations_are_drawn(demo_data_root, task, config):
    """Validation pipelines are deterministic: the drawing differs from the plain pipeline
    image where the boxes / masks are, and only there for boxes (a thin outline)."""
    from emo.apis.launch import load_config
    phase = 'val'
    options = dict(kv.split('=', 1) for kv in data_options(task, demo_data_root, phase))
    cfg = load_config(osp.join(DEMO, config), options)
    dataset = browse.build_dataset(cfg, phase)
    visualizer = browse.build_visualizer(cfg, dataset)
    item = dataset[0]
    image = browse.to_rgb(item['inputs'])

    class Args:
        show, show_interval, rescale_factor = False, 0, None

    drawing = browse.draw(visualizer, cfg.default_scope, image.copy(), item['data_samples'],
                          Args, 'x', None)
    assert drawing.shape == image.shape
    if task == 'det':
        changed = drawn_pixels(image, drawing)
        assert len(item['data_samples'].gt_instances) > 0
        assert 0.01 < changed < 0.5  # box outlines and labels, not the whole image
    else:
        labels = np.unique(item['data_samples'].gt_sem_seg.data.numpy())
        assert len(set(labels) - {255}) >= 2
        labelled = float(np.mean(item['data_samples'].gt_sem_seg.data.numpy() != 255))
        # the colour overlay covers the labelled pixels (the image itself is resized to
        # (192, 192) by the test pipeline; the labels, loaded after it, are drawn resized)
        assert drawn_pixels(image, drawing, threshold=10) >= 0.95 * labelled > 0.5


def test_classification_label_is_drawn(demo_data_root):
    from emo.apis.launch import load_config
    root = osp.join(demo_data_root, 'imagenet')
    cfg = load_config(osp.join(DEMO, 'emo-1m_demo_cls.py'),
                      {'val_dataloader.dataset.data_root': root})
    dataset = browse.build_dataset(cfg, 'val')
    visualizer = browse.build_visualizer(cfg, dataset)
    item = dataset[0]
    assert visualizer.dataset_meta['classes'] == ('circle', 'cross', 'square', 'triangle')
    image = browse.to_rgb(item['inputs'])

    class Args:
        show, show_interval, rescale_factor = False, 0, 3.0

    drawing = browse.draw(visualizer, 'mmpretrain', image, item['data_samples'], Args, 'x',
                          None)
    assert drawing.shape == (192, 192, 3)  # --rescale-factor 3
    # the text box sits in the top-left corner, the bottom-right is the image
    big = cv2.resize(image, (192, 192), interpolation=cv2.INTER_LINEAR)
    assert drawn_pixels(big[:20, :100], drawing[:20, :100]) > 0.2
    assert drawn_pixels(big[150:, 150:], drawing[150:, 150:]) < 0.05


def test_cli(demo_data_root, tmp_path):
    out = str(tmp_path / 'vis')
    proc = run_tool('tools/visualization/browse_dataset.py',
                    'configs/demo/ssdlite_emo-1m_demo_coco.py', '--phase', 'val',
                    '--show-number', '2', '--output-dir', out, '--cfg-options',
                    *data_options('det', demo_data_root, 'val'))
    assert 'drew 2 of the 24 val images' in proc.stdout
    assert len(glob.glob(osp.join(out, '*.jpg'))) == 2


def test_errors(tmp_path, capsys):
    config = osp.join(DEMO, 'emo-1m_demo_cls.py')
    with pytest.raises(SystemExit):
        browse.main([config])
    assert 'give --output-dir DIR' in capsys.readouterr().err
    with pytest.raises(FileNotFoundError, match=f"train data root '{tmp_path}/none' does "
                       'not exist'):
        browse.main([config, '--output-dir', str(tmp_path), '--cfg-options',
                     f'train_dataloader.dataset.data_root={tmp_path}/none'])
