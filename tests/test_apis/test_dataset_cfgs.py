"""``emo.apis.builder.dataset_cfgs``: the one unroller of wrapped data sets, for configs
(check_data, the calibration set) and built data sets (DataCheckHook) alike."""
from mmengine.dataset import BaseDataset, ConcatDataset, RepeatDataset

from emo.apis.builder import dataset_cfgs


def test_configs_outermost_first_and_leaves():
    a, b = dict(type='A', data_root='a'), dict(type='B', data_root='b')
    cfg = dict(type='RepeatDataset', times=2,
               dataset=dict(type='ConcatDataset', datasets=[a, b]))
    assert [d['type'] for d in dataset_cfgs(cfg)] == ['RepeatDataset', 'ConcatDataset',
                                                      'A', 'B']
    assert list(dataset_cfgs(cfg, leaves=True)) == [a, b]
    assert list(dataset_cfgs(None)) == [] and list(dataset_cfgs({})) == []


def test_built_data_sets_unrolled_without_loading():
    a = BaseDataset(ann_file='a.json', lazy_init=True)
    b = BaseDataset(ann_file='b.json', lazy_init=True)
    repeated = RepeatDataset(a, times=3, lazy_init=True)
    assert list(dataset_cfgs(repeated)) == [repeated, a]
    concat = ConcatDataset([b, a], lazy_init=True)
    assert list(dataset_cfgs(concat, leaves=True)) == [b, a]
    assert not a._fully_initialized  # no annotation file was read
