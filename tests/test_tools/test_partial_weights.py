"""No metric from weights that do not fill the model, and no resume from another run's
checkpoint: ``tools/test.py`` and ``tools/train.py --resume`` with the demo trainings'
checkpoints given to the wrong config (fixture ``demo_runs``)."""
import os
import os.path as osp

import pytest
import torch
from helpers import REPO, run_tool
from mmengine.config import Config

import emo  # noqa: F401
from emo.apis import build_model_from_cfg
from emo.engine import IncompleteCheckpointError
from emo.engine.safe_io import check_resume, resume_mismatches

pytestmark = pytest.mark.usefixtures('single_thread')
DEMO_CONFIGS = {t: osp.join(REPO, 'configs', 'demo', c) for t, c in (
    ('cls', 'emo-1m_demo_cls.py'), ('det', 'ssdlite_emo-1m_demo_coco.py'),
    ('seg', 'deeplabv3_emo-1m_demo_ade20k.py'))}


def last_checkpoint(work_dir):
    with open(osp.join(work_dir, 'last_checkpoint')) as f:
        return f.read().strip()


def cls_test_options(root, work):
    return ['--work-dir', str(work), '--cfg-options',
            f'test_dataloader.dataset.data_root={osp.join(root, "imagenet")}',
            'test_dataloader.dataset.indices=8']


def test_test_py_refuses_the_detector_checkpoint_on_the_classifier(demo_runs, demo_data_root,
                                                                   tmp_path):
    ssdlite = last_checkpoint(demo_runs['det'])
    work = tmp_path / 'refused'
    proc = run_tool('tools/test.py', DEMO_CONFIGS['cls'], ssdlite,
                    *cls_test_options(demo_data_root, work), check=False)
    assert proc.returncode != 0
    err = proc.stderr
    assert 'IncompleteCheckpointError' in err and f'{ssdlite}: the checkpoint fills only ' \
        'part of ImageClassifier: 4 of its 217 tensors are not in the file (213 are): ' \
        'backbone.norm.* (2), head.* (2)' in err
    for key in ('backbone.norm.norm.weight', 'backbone.norm.norm.bias', 'head.fc.weight',
                'head.fc.bias'):
        assert key in err
    # the config the checkpoint belongs to, from its meta
    assert "a run of the config 'ssdlite_emo-1m_demo_coco' " \
        '(configs/demo/ssdlite_emo-1m_demo_coco.py)' in err
    assert 'an mmdet SingleStageDetector, backbone EMO 1m, 3 classes (meta.cfg)' in err
    assert 'pass --allow-partial' in err
    assert 'test metrics' not in proc.stdout
    assert not osp.exists(work / 'test_metrics.json')

    # asked for by name: evaluated, and the log says loudly what was not loaded
    work = tmp_path / 'allowed'
    proc = run_tool('tools/test.py', DEMO_CONFIGS['cls'], ssdlite, '--allow-partial',
                    *cls_test_options(demo_data_root, work))
    out = proc.stdout + proc.stderr
    assert 'WARNING' in out and '--allow-partial: loading it anyway; the missing tensors ' \
        'stay at their random initialisation' in out and 'head.fc.weight' in out
    assert osp.isfile(work / 'test_metrics.json')


def test_test_py_takes_a_segmentor_checkpoint_without_its_auxiliary_head(
        demo_runs, demo_data_root, tmp_path):
    """What inference does not use (a segmentor's auxiliary head, BatchNorm counters) may
    be absent; the same checkpoint without the decode head may not."""
    ckpt = torch.load(last_checkpoint(demo_runs['seg']), map_location='cpu',
                      weights_only=False)
    state = ckpt['state_dict']
    lean = {k: v for k, v in state.items()
            if not k.startswith('auxiliary_head.') and not k.endswith('num_batches_tracked')}
    no_decode = {k: v for k, v in lean.items() if not k.startswith('decode_head.conv_seg')}
    ade = osp.join(demo_data_root, 'ade', 'ADEChallengeData2016')
    options = ['--cfg-options', f'test_dataloader.dataset.data_root={ade}',
               'test_dataloader.dataset.indices=1']
    for name, sd in (('lean', lean), ('no_decode', no_decode)):
        torch.save(dict(state_dict=sd, meta=ckpt['meta']), tmp_path / f'{name}.pth')
    proc = run_tool('tools/test.py', DEMO_CONFIGS['seg'], tmp_path / 'lean.pth',
                    '--work-dir', tmp_path / 'lean', *options)
    assert 'tensors that the model does not use in test mode are not in the checkpoint' \
        in proc.stdout + proc.stderr
    assert osp.isfile(tmp_path / 'lean' / 'test_metrics.json')
    # tools/test.py loads through the same check (CheckpointFitHook -> fit_checkpoint)
    with pytest.raises(IncompleteCheckpointError) as info:
        build_model_from_cfg(DEMO_CONFIGS['seg'], checkpoint=str(tmp_path / 'no_decode.pth'))
    assert 'decode_head.conv_seg.weight' in str(info.value)
    assert "a run of the config 'deeplabv3_emo-1m_demo_ade20k'" in str(info.value)


def test_a_foreign_resume_is_refused_up_front(demo_runs, demo_data_root, tmp_path):
    """The issue's case: the DeepLabv3 checkpoint given to the classifier's --resume failed
    inside the optimizer after everything was built; now it is refused by name before the
    work dir exists."""
    work = tmp_path / 'work'
    deeplab = last_checkpoint(demo_runs['seg'])
    proc = run_tool('tools/train.py', DEMO_CONFIGS['cls'], '--work-dir', work,
                    '--resume', deeplab, '--cfg-options', *(
                        f'{s}_dataloader.dataset.data_root={demo_data_root}/imagenet'
                        for s in ('train', 'val')), check=False)
    assert proc.returncode != 0
    err = proc.stderr
    assert 'CheckpointError' in err and \
        f'--resume {deeplab}: the checkpoint does not belong to emo-1m_demo_cls.py' in err
    assert "model.type: checkpoint 'EncoderDecoder' vs config 'ImageClassifier'" in err
    assert "default_scope: checkpoint 'mmseg' vs config 'mmpretrain'" in err
    assert 'tensors are not in it: backbone.norm.norm.bias' in err  # the model keys
    assert 'its optimizer has ' in err and 'parameter groups' in err
    assert "a run of the config 'deeplabv3_emo-1m_demo_ade20k'" in err
    assert 'parameter group' not in proc.stdout  # not torch's error from inside the run
    assert not work.exists()  # nothing built or written


def test_resume_checks_own_and_altered_checkpoints(demo_runs, demo_data_root, tmp_path):
    """The run's own checkpoint fits its config (so the check refuses only what is wrong);
    the same file with an optimizer group dropped, or with the classes changed in the
    config, is refused naming that."""
    cfg = Config.fromfile(DEMO_CONFIGS['cls'])
    path = last_checkpoint(demo_runs['cls'])
    ckpt = torch.load(path, map_location='cpu', weights_only=False)
    assert resume_mismatches(cfg, ckpt) == []

    cfg.resume, cfg.load_from = True, path
    assert check_resume(cfg) == path

    groups = ckpt['optimizer']['param_groups']
    assert len(groups) > 1
    dropped = dict(ckpt, optimizer=dict(ckpt['optimizer'], param_groups=groups[:-1]))
    (msg, ) = resume_mismatches(cfg, dropped)
    assert msg.startswith(f'its optimizer has {len(groups) - 1} parameter groups') and \
        f"the config's optim_wrapper builds {len(groups)}" in msg

    five = Config.fromfile(DEMO_CONFIGS['cls'])
    five.model.head.num_classes = 5
    msgs = resume_mismatches(five, ckpt)
    assert 'model.head.num_classes: checkpoint 4 vs config 5' in msgs[0]
    assert msgs[1].startswith('2 tensors have other shapes: head.fc.weight: checkpoint '
                              '(4, ') and 'vs model (5, ' in msgs[1]


def test_resume_with_nothing_saved_yet_starts(tmp_path):
    cfg = Config.fromfile(DEMO_CONFIGS['cls'])
    cfg.resume, cfg.load_from, cfg.work_dir = True, None, str(tmp_path)
    assert check_resume(cfg) is None and os.listdir(tmp_path) == []
