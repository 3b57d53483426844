"""``tools/train.py --tensorboard``: TensorBoard event files next to scalars.json, holding
the same scalars, for the three demo configs (fixture ``demo_runs``)."""
import glob
import json
import os.path as osp

import pytest
from helpers import load_tool

CLS = osp.join(osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))),
              'configs/demo/emo-1m_demo_cls.py')
METRIC = {'cls': 'accuracy/top1', 'det': 'coco/bbox_mAP', 'seg': 'mIoU'}


def event_scalars(folder):
    """{tag: {step: value}} of the TensorBoard event files in ``folder``."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    acc = EventAccumulator(folder, size_guidance={'scalars': 0})
    acc.Reload()
    return {tag: {e.step: e.value for e in acc.Scalars(tag)} for tag in acc.Tags()['scalars']}


@pytest.mark.parametrize('task', ['cls', 'det', 'seg'])
def test_event_files_hold_the_logged_scalars(demo_runs, task):
    (vis_data, ) = glob.glob(osp.join(demo_runs[task], '*', 'vis_data'))
    assert glob.glob(osp.join(vis_data, 'events.out.tfevents.*'))
    scalars = event_scalars(vis_data)
    assert {'loss', 'lr', METRIC[task]} <= set(scalars)
    with open(osp.join(vis_data, 'scalars.json')) as f:
        lines = [json.loads(line) for line in f if line.strip()]
    for key in ('loss', 'lr', METRIC[task]):
        logged = {r['step']: r[key] for r in lines if key in r}
        assert set(scalars[key]) == set(logged), key
        for step, value in logged.items():
            assert scalars[key][step] == pytest.approx(value, rel=1e-6, abs=1e-9), (key, step)


def test_flag_adds_the_backend_once():
    """--tensorboard appends TensorboardVisBackend to the visualizer's backends, keeping
    the local one (scalars.json), once."""
    from emo.apis.launch import load_config
    train = load_tool('tools/train.py')
    assert train.get_args([CLS, '--tensorboard']).tensorboard
    assert not train.get_args([CLS]).tensorboard
    cfg = load_config(CLS)
    train.add_tensorboard(cfg)
    train.add_tensorboard(cfg)
    assert [b['type'] for b in cfg.visualizer.vis_backends] == \
        ['LocalVisBackend', 'TensorboardVisBackend']


def test_cfg_options_way():
    """The documented --cfg-options switch: TensorBoard instead of the local files."""
    from emo.apis.launch import load_config
    cfg = load_config(CLS, {'visualizer.vis_backends.0.type': 'TensorboardVisBackend'})
    assert [b['type'] for b in cfg.visualizer.vis_backends] == ['TensorboardVisBackend']
