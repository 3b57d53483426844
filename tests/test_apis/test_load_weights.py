"""emo.apis.load_weights / build_model_from_cfg(checkpoint=...): the weights must fill the
model (evaluation, inference and export load through them), with named errors that point
to the config the checkpoint belongs to; ``allow_partial`` loads the rest, loudly. (What
may be absent, a segmentor's auxiliary head and BatchNorm counters: with the DeepLabv3
demo checkpoint in tests/test_tools/test_partial_weights.py.)"""
import os.path as osp

import pytest
import torch
from mmengine.config import Config
from reference_emo import ReferenceEMO, randomize_

import emo  # noqa: F401
from emo.apis import build_model_from_cfg, load_weights
from emo.engine import CheckpointError, IncompleteCheckpointError
from emo.models.utils import state_dict as sd_module

CLS = 'configs/demo/emo-1m_demo_cls.py'
#: what mmengine's runner writes into a checkpoint's meta (a short cfg text)
META = dict(experiment_name='emo-1m_demo_cls_20261203_120000', dataset_meta=dict(
    classes=('a', 'b', 'c', 'd')), cfg="default_scope = 'mmpretrain'\nmodel = dict(type="
    "'ImageClassifier', backbone=dict(type='EMO', arch='1m'), head=dict(type="
    "'LinearClsHead', num_classes=4))\n")


@pytest.fixture(scope='module')
def classifier():
    return randomize_(build_model_from_cfg(CLS), seed=1).state_dict()


def save(path, state, meta=META):
    torch.save(dict(state_dict=state, meta=meta) if meta is not None else
               dict(state_dict=state), path)
    return str(path)


def test_a_complete_checkpoint_loads_exactly(classifier, tmp_path):
    model = build_model_from_cfg(CLS, checkpoint=save(tmp_path / 'c.pth', classifier),
                                 strict=True)
    for k, v in model.state_dict().items():
        assert torch.equal(v, classifier[k]), k
    assert model.dataset_meta == META['dataset_meta']


def test_a_checkpoint_without_the_head_is_a_named_error(classifier, tmp_path):
    state = {k: v for k, v in classifier.items() if not k.startswith('head.')}
    path = save(tmp_path / 'headless.pth', state)
    with pytest.raises(IncompleteCheckpointError) as info:
        build_model_from_cfg(CLS, checkpoint=path)
    assert isinstance(info.value, CheckpointError)
    msg = str(info.value)
    assert msg.startswith(f'{path}: the checkpoint fills only part of ImageClassifier: '
                          '2 of its 217 tensors are not in the file (215 are): head.* '
                          '(2); modules: head.fc; missing keys: head.fc.bias, '
                          'head.fc.weight.')
    assert "It was saved by a run of the config 'emo-1m_demo_cls' " \
        f"({osp.join('configs', 'demo', 'emo-1m_demo_cls.py')})" in msg
    assert 'an mmpretrain ImageClassifier, backbone EMO 1m, 4 classes (meta.cfg)' in msg
    assert 'pass --allow-partial (allow_partial=True)' in msg

    # without meta: said so
    with pytest.raises(IncompleteCheckpointError, match='The checkpoint records no config'):
        build_model_from_cfg(CLS, checkpoint=save(tmp_path / 'bare.pth', state, None))


def test_allow_partial_loads_the_rest_and_says_so(classifier, tmp_path, monkeypatch):
    logged = []
    real = sd_module.print_log
    monkeypatch.setattr(sd_module, 'print_log', lambda msg, logger=None, level=None: (
        logged.append((level, msg)), real(msg, logger=logger, level=level)))
    state = {k: v for k, v in classifier.items() if not k.startswith('head.')}
    torch.manual_seed(0)
    fresh = build_model_from_cfg(CLS).state_dict()
    torch.manual_seed(0)
    model = build_model_from_cfg(CLS, checkpoint=save(tmp_path / 'h.pth', state),
                                 allow_partial=True)
    got = model.state_dict()
    assert all(torch.equal(got[k], v) for k, v in state.items())
    assert torch.equal(got['head.fc.weight'], fresh['head.fc.weight'])  # its own init
    assert not torch.equal(got['head.fc.weight'], classifier['head.fc.weight'])
    (warning, ) = [m for level, m in logged if level == 30]  # logging.WARNING
    assert 'head.fc.weight' in warning and '--allow-partial: loading it anyway' in warning


def test_load_weights_converts_an_official_file(tmp_path):
    """An official ``EMO_1M/net.pth`` (plain state dict: stage*, norm, head) fills the
    classifier through the same check as a runner checkpoint."""
    official = randomize_(ReferenceEMO('1m', num_classes=4), seed=3).state_dict()
    torch.save(official, tmp_path / 'net.pth')
    model = build_model_from_cfg(CLS)
    assert load_weights(model, str(tmp_path / 'net.pth')) == {}
    assert torch.equal(model.state_dict()['head.fc.weight'], official['head.weight'])
    del official['head.weight']
    torch.save(official, tmp_path / 'no_head.pth')
    with pytest.raises(IncompleteCheckpointError, match='head.fc.weight'):
        load_weights(build_model_from_cfg(CLS), str(tmp_path / 'no_head.pth'))


def test_strict_refuses_unexpected_keys_and_shapes_stay_errors(classifier, tmp_path):
    extra = dict(classifier, **{'neck.extra.weight': torch.zeros(1)})
    path = save(tmp_path / 'extra.pth', extra)
    build_model_from_cfg(CLS, checkpoint=path)  # not strict: reported, loads
    with pytest.raises(RuntimeError, match='neck.extra.weight'):
        build_model_from_cfg(CLS, checkpoint=path, strict=True)
    five = dict(classifier, **{'head.fc.weight': torch.zeros(5, 200)})
    with pytest.raises(ValueError, match='head.fc.weight: file \\(5, 200\\)'):
        build_model_from_cfg(CLS, checkpoint=save(tmp_path / 'five.pth', five),
                             allow_partial=True)  # shapes are never allowed


def test_the_config_text_in_meta_is_read_not_run(classifier, tmp_path):
    """``meta.cfg`` comes from the file: it is parsed with ``ast``, never executed."""
    marker = tmp_path / 'ran'
    meta = dict(META, cfg=f"import os\nos.system('touch {marker}')\nmodel = dict(type="
                f"'X', backbone=dict(type=__import__('os').getcwd()))\n")
    state = {k: v for k, v in classifier.items() if not k.startswith('head.')}
    with pytest.raises(IncompleteCheckpointError, match=r"an X \(meta.cfg\)"):
        build_model_from_cfg(CLS, checkpoint=save(tmp_path / 'm.pth', state, meta))
    assert not marker.exists()


def test_a_file_that_is_not_a_state_dict_is_named(tmp_path):
    torch.save(torch.zeros(3), tmp_path / 'tensor.pth')
    with pytest.raises(CheckpointError, match='tensor.pth: not a checkpoint: the file '
                       'holds a Tensor, not a dict of tensors'):
        build_model_from_cfg(CLS, checkpoint=str(tmp_path / 'tensor.pth'))



def test_recorded_config_text_compares_like_the_config():
    """What ``--resume`` compares: a model read back from ``pretty_text`` (negative
    numbers, tuples written as tuples) names the same model as the Config itself (the
    64 configs of the project were checked so by hand; the demo runs' own checkpoints pass
    in tests/test_tools/test_partial_weights.py)."""
    from emo.engine.safe_io import _identity
    from emo.models.utils.state_dict import _config_literals
    cfg = Config(dict(default_scope='mmdet', model=dict(
        type='X', backbone=dict(type='EMO', arch=dict(depths=(1, 2), drop=-0.5)),
        bbox_head=dict(type='H', num_classes=-1))))
    recorded = _config_literals(cfg.pretty_text)
    assert recorded['model']['backbone']['arch'] == dict(depths=[1, 2], drop=-0.5)
    assert _identity(recorded) == _identity(cfg)
