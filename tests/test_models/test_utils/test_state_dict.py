"""emo.models.utils.state_dict: official EMO checkpoints load completely into the
classifier and the backbone; files that do not fit fail loudly, through the backbone's
init_cfg and through the runner's CheckpointFitHook alike."""
import logging

import pytest
import torch
from helpers import accumulation_length, assert_close_derived, load_tool, run_tool
from mmengine.logging import MMLogger
from mmengine.registry import MODELS, init_default_scope
from reference_emo import ReferenceEMO, randomize_

from emo.models import EMO
from emo.models.utils.state_dict import fit_checkpoint, load_backbone_checkpoint

HEAD_WIDTH = {'1m': 168, '2m': 200, '5m': 288, '6m': 320}
N_KEYS = {'1m': 217, '2m': 258, '5m': 258, '6m': 258}


def official_file(tmp_path, arch, seed=0):
    ref = randomize_(ReferenceEMO(arch), seed=seed).eval()
    path = str(tmp_path / f'EMO_{arch.upper()}_net.pth')
    torch.save(ref.state_dict(), path)
    return ref, path


def classifier(arch):
    init_default_scope('mmpretrain')
    return MODELS.build(dict(
        type='ImageClassifier', backbone=dict(type='EMO', arch=arch),
        neck=dict(type='GlobalAveragePooling'),
        head=dict(type='LinearClsHead', num_classes=1000, in_channels=HEAD_WIDTH[arch])))


@pytest.mark.parametrize('arch', ['1m', '2m', '5m', '6m'])
def test_converted_official_weights_give_official_logits(tmp_path, arch):
    ref, src = official_file(tmp_path, arch)
    assert len(ref.state_dict()) == N_KEYS[arch]  # the reference has the official keys
    dst = str(tmp_path / 'mmpretrain.pth')
    # the tool's main in this process (its exit codes: test_converter_rejects_...)
    load_tool('tools/model_converters/emo_to_mmpretrain.py').main([src, dst, '--arch', arch])
    model = classifier(arch).eval()
    state = torch.load(dst, map_location='cpu')['state_dict']
    assert len(state) == N_KEYS[arch]
    model.load_state_dict(state, strict=True)  # every key used, none missing
    x = torch.randn(2, 3, 224, 224)
    with torch.no_grad():
        # the derived float32 bound (helpers.float32_bound), n counted on the reference
        assert_close_derived(model(x, mode='tensor'), ref(x), accumulation_length(ref, x[:1]))


def test_converter_rejects_a_file_of_another_arch(tmp_path):
    _, src = official_file(tmp_path, '2m')
    proc = run_tool('tools/model_converters/emo_to_mmpretrain.py', src, tmp_path / 'out.pth',
                    '--arch', '5m', check=False)
    assert proc.returncode != 0 and 'size mismatch' in proc.stderr
    assert not (tmp_path / 'out.pth').exists()


def test_official_file_loads_into_backbone_through_init_cfg(tmp_path, caplog):
    ref, path = official_file(tmp_path, '1m')
    model = EMO('1m', init_cfg=dict(type='Pretrained', checkpoint=path))
    model.init_weights()
    own = model.state_dict()
    for k, v in ref.state_dict().items():
        if not k.startswith('head.'):
            assert torch.equal(own[k], v), k
    # downstream backbone: no final norm; norm.* and head.* are ignored on purpose
    down = EMO('1m', out_indices=(1, 2, 3, 4), final_norm=False)
    report = load_backbone_checkpoint(down, path)
    assert len(report['loaded']) == N_KEYS['1m'] - 4
    assert not report['missing'] and not report['unexpected']
    assert sorted(report['ignored']) == ['head.bias', 'head.weight', 'norm.norm.bias',
                                         'norm.norm.weight']


def test_mmpretrain_checkpoint_loads_into_backbone(tmp_path):
    model = classifier('1m')
    path = str(tmp_path / 'epoch_1.pth')
    torch.save(dict(state_dict=model.state_dict(), meta=dict()), path)
    backbone = EMO('1m', final_norm=False)
    report = load_backbone_checkpoint(backbone, path)
    assert not report['missing'] and not report['unexpected']
    assert set(report['ignored']) == {'backbone.norm.norm.weight', 'backbone.norm.norm.bias',
                                      'head.fc.weight', 'head.fc.bias'}
    assert torch.equal(backbone.stage4[1].qk.conv.weight,
                       model.backbone.stage4[1].qk.conv.weight)


def test_partial_file_reports_missing_keys_by_name(tmp_path):
    ref, _ = official_file(tmp_path, '1m')
    state = ref.state_dict()
    state.pop('stage4.2.proj.conv.weight')
    state['stage9.0.extra'] = torch.zeros(1)
    path = str(tmp_path / 'partial.pth')
    torch.save(state, path)
    logger = MMLogger.get_current_instance()
    records = []
    handler = logging.Handler()
    handler.emit = records.append
    logger.addHandler(handler)
    try:
        report = load_backbone_checkpoint(EMO('1m'), path)
    finally:
        logger.removeHandler(handler)
    assert report['missing'] == ['stage4.2.proj.conv.weight']
    assert report['unexpected'] == ['stage9.0.extra']
    text = '\n'.join(r.getMessage() for r in records)
    assert 'missing keys' in text and 'stage4.2.proj.conv.weight' in text
    assert 'unexpected keys' in text and 'stage9.0.extra' in text
    with pytest.raises(ValueError, match='strict load failed.*stage4.2.proj.conv.weight'):
        load_backbone_checkpoint(EMO('1m'), path, strict=True)


def test_files_that_fit_nothing_fail_loudly(tmp_path):
    ref, _ = official_file(tmp_path, '1m')
    wrapped = str(tmp_path / 'wrapped.pth')  # a prefix the official loader would miss
    torch.save({f'encoder.{k}': v for k, v in ref.state_dict().items()}, wrapped)
    model = EMO('1m')
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(ValueError, match='no tensor fits'):
        load_backbone_checkpoint(model, wrapped)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    # the same file with the right prefix loads completely
    report = load_backbone_checkpoint(model, wrapped, prefix='encoder.')
    assert not report['missing']
    other = str(tmp_path / 'other_arch.pth')
    torch.save(randomize_(ReferenceEMO('2m')).state_dict(), other)
    with pytest.raises(ValueError, match='shapes do not fit'):
        load_backbone_checkpoint(EMO('1m'), other)


def test_runner_checkpoints_fit_or_fail_naming_the_keys():
    """What CheckpointFitHook does to a loaded checkpoint (load_from, tools/test.py)."""
    model = classifier('1m')
    ref = randomize_(ReferenceEMO('1m'))
    official = dict(ref.state_dict())
    fit_checkpoint(model, official, 'net.pth')  # converted in place to mmpretrain keys
    assert set(official) == {'state_dict', 'meta'}
    model.load_state_dict(official['state_dict'], strict=True)
    assert torch.equal(model.head.fc.weight, ref.head.weight)
    # DataParallel keys fit as well (mmengine strips 'module.' when it loads them)
    ddp = dict(state_dict={f'module.{k}': v for k, v in model.state_dict().items()})
    fit_checkpoint(model, ddp, 'ddp.pth')
    other = dict(state_dict=classifier('2m').state_dict())
    with pytest.raises(ValueError, match=r'other.pth: 122 tensors do not fit the model.*'
                       r'backbone.stage3.0.proj.conv.weight: file \(120, 288, 1, 1\) vs '
                       r'model \(80, 288, 1, 1\)'):
        fit_checkpoint(model, other, 'other.pth')
    with pytest.raises(ValueError, match='nothing.pth: no tensor fits ImageClassifier'):
        fit_checkpoint(model, dict(state_dict={'encoder.w': torch.zeros(1)}), 'nothing.pth')
