"""Official EMOv2 weights: the released classifier files (a plain state_dict of the
official keys, made here by the literal reference network; or an official trainer file
with 'net' / 'net_E') load as they are, by name and with a report, into the backbone
(init_cfg), into the classifier of the configs (the runner's fit check, which
tools/test.py uses) and through the converter; files that do not fit fail loudly."""
import logging
import os.path as osp

import pytest
import torch
from helpers import REPO, accumulation_length, assert_close_derived, load_tool
from mmengine.config import Config
from mmengine.logging import MMLogger
from reference_emo2 import ReferenceEMOv2, randomize_

from emo.apis import build_model_from_cfg
from emo.engine.safe_io import load_from_local
from emo.models import EMOv2
from emo.models.utils.state_dict import fit_checkpoint, load_backbone_checkpoint

CONFIG = osp.join(REPO, 'configs/classification/emov2-1m_8xb128_in1k.py')


@pytest.fixture(scope='module')
def official(tmp_path_factory):
    """(reference, path) of an 'EMOv2_1M_224.pth': the official keys, random values."""
    ref = randomize_(ReferenceEMOv2('1m'), seed=0).eval()
    path = str(tmp_path_factory.mktemp('emo2') / 'EMOv2_1M_224.pth')
    torch.save(ref.state_dict(), path)
    return ref, path


def converter():
    return load_tool('tools/model_converters/emo_to_mmpretrain.py')


def classifier():
    return build_model_from_cfg(Config.fromfile(CONFIG), mode='train').eval()


def test_backbone_loads_the_official_file_by_name(official):
    ref, path = official
    model = EMOv2('1m', init_cfg=dict(type='Pretrained', checkpoint=path))
    model.init_weights()
    own = model.state_dict()
    for k, v in ref.state_dict().items():
        if not k.startswith('head.'):
            assert torch.equal(own[k], v), k
    down = EMOv2('1m', out_indices=(1, 2, 3, 4), final_norm=False, window_size=10)
    report = load_backbone_checkpoint(down, path)
    assert not report['missing'] and not report['unexpected']
    assert sorted(report['ignored']) == ['head.bias', 'head.weight', 'norm.norm.bias',
                                         'norm.norm.weight']


def test_segmentation_backbone_reports_the_dw_norms_it_cannot_fill(official):
    """The official repository's current segmentation backbone has LN + GELU after its
    DW-Convs: the file's BatchNorms there do not fit and the LNs stay at their
    initialisation; the official code skips them silently, here they are listed."""
    _, path = official
    model = EMOv2('1m', out_indices=(1, 2, 3, 4), final_norm=False,
                  dw_norm_cfg=dict(type='LN'), dw_act_cfg=dict(type='GELU'))
    report = load_backbone_checkpoint(model, path)
    assert report['missing'] and all('conv_local.norm.norm.' in k for k in report['missing'])
    assert len(report['missing']) == 2 * 15  # weight + bias of the 15 blocks
    assert all('conv_local.norm.' in k for k in report['unexpected'])
    assert any(k.endswith('conv_local.norm.running_var') for k in report['unexpected'])


def test_trainer_checkpoint_loads_its_net(official, tmp_path):
    ref, _ = official
    other = randomize_(ReferenceEMOv2('1m'), seed=9).state_dict()
    path = str(tmp_path / 'ckpt.pth')
    torch.save(dict(net=ref.state_dict(), net_E=other, epoch=300), path)
    model = EMOv2('1m')
    load_backbone_checkpoint(model, path)
    assert torch.equal(model.state_dict()['stage3.1.eops.0.qk.conv.weight'],
                       ref.state_dict()['stage3.1.eops.0.qk.conv.weight'])
    checkpoint = load_from_local(path, map_location='cpu')
    state = fit_checkpoint(classifier(), checkpoint, path, complete=True)
    assert torch.equal(state['head.fc.weight'], ref.state_dict()['head.weight'])


@pytest.mark.numerical
def test_classifier_of_the_config_gives_the_official_logits(official, tmp_path):
    """The runner's check (tools/test.py CONFIG EMOv2_1M_224.pth): the file is converted
    to mmpretrain names, fills every tensor, and the logits are the reference's."""
    ref, path = official
    model = classifier()
    state = fit_checkpoint(model, load_from_local(path, map_location='cpu'), path,
                           complete=True)
    model.load_state_dict(state, strict=True)
    x = torch.randn(1, 3, 97, 131)
    with torch.no_grad():
        assert_close_derived(model(x, mode='tensor'), ref(x), accumulation_length(ref, x))
    # the converter writes the same tensors, checked against the EMOv2-1M classifier
    dst = tmp_path / 'emov2_1m.pth'
    converter().main([path, str(dst), '--family', 'emov2', '--arch', '1m'])
    converted = torch.load(dst, map_location='cpu')['state_dict']
    assert converted.keys() == state.keys()
    assert all(torch.equal(converted[k], state[k]) for k in state)


def test_files_that_do_not_fit_fail_by_name(official, tmp_path, capsys):
    _, path = official
    with pytest.raises(ValueError, match='EMOv2_1M_224.pth: .* tensors do not fit'):
        load_backbone_checkpoint(EMOv2('2m'), path)
    with pytest.raises(SystemExit) as exit_:
        converter().main([path, str(tmp_path / 'o.pth'), '--family', 'emov2', '--arch', '6m'])
    assert exit_.value.code != 0 and "EMOv2 has no arch '6m'" in capsys.readouterr().err
    assert not (tmp_path / 'o.pth').exists()
    # an EMO (v1) file is not an EMOv2 one: no tensor of the i2RMB layout fits
    emo1 = tmp_path / 'EMO_1M_net.pth'
    torch.save({'stage1.0.v.conv.weight': torch.zeros(64, 16, 1, 1)}, emo1)
    with pytest.raises(ValueError, match='no tensor fits EMOv2'):
        load_backbone_checkpoint(EMOv2('1m'), str(emo1))


def test_load_is_logged(official):
    _, path = official
    logger = MMLogger.get_instance('emo2_weights_test')
    records = []
    handler = logging.Handler()
    handler.emit = records.append
    logger.addHandler(handler)
    try:
        load_backbone_checkpoint(EMOv2('1m', final_norm=False), path,
                                 logger='emo2_weights_test')
    finally:
        logger.removeHandler(handler)
    text = '\n'.join(r.getMessage() for r in records)
    n = len(EMOv2('1m', final_norm=False).state_dict())
    assert f'Loaded {n}/{n} tensors of EMOv2 from {path}' in text
    assert 'ignored 4 keys of other parts' in text
