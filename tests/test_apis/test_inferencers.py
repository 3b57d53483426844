"""emo.apis.inferencer: the libraries' inferencers with the weights checked as
tools/test.py checks them (a checkpoint that does not fill the model is a named error)."""
import numpy as np
import pytest
import torch
from reference_emo import randomize_

import emo  # noqa: F401
from emo.apis import build_model_from_cfg, inferencer
from emo.engine import IncompleteCheckpointError

CLS = 'configs/demo/emo-1m_demo_cls.py'
DET = 'configs/demo/ssdlite_emo-1m_demo_coco.py'
META = dict(experiment_name='emo-1m_demo_cls_20261203_120000',
            dataset_meta=dict(classes=('w', 'x', 'y', 'z')))


@pytest.fixture(scope='module')
def classifier(tmp_path_factory):
    path = tmp_path_factory.mktemp('inferencers') / 'cls.pth'
    state = randomize_(build_model_from_cfg(CLS), seed=4).state_dict()
    torch.save(dict(state_dict=state, meta=META), path)
    return str(path), state


def test_classification_inferencer_gets_the_checkpoint(classifier, tmp_path):
    from mmpretrain import ImageClassificationInferencer
    path, state = classifier
    inf = inferencer(CLS, path, device='cpu')
    assert type(inf) is ImageClassificationInferencer
    for k, v in inf.model.state_dict().items():
        assert torch.equal(v, state[k]), k
    image = np.random.default_rng(0).integers(0, 255, (40, 48, 3), dtype=np.uint8)
    result = inf(image)[0]
    assert result['pred_class'] == META['dataset_meta']['classes'][result['pred_label']]

    headless = {k: v for k, v in state.items() if not k.startswith('head.')}
    torch.save(dict(state_dict=headless, meta=META), tmp_path / 'headless.pth')
    with pytest.raises(IncompleteCheckpointError, match='head.fc.weight'):
        inferencer(CLS, str(tmp_path / 'headless.pth'))


def test_detection_inferencer_refuses_a_classifier_checkpoint(classifier):
    from mmdet.apis import DetInferencer
    with pytest.raises(IncompleteCheckpointError) as info:
        inferencer(DET, classifier[0], device='cpu')
    msg = str(info.value)
    assert 'the checkpoint fills only part of SingleStageDetector' in msg
    assert '144 of its 381 tensors are not in the file (213 are): neck.* (60), ' \
        'bbox_head.* (84); modules: bbox_head.cls_convs.0.0.bn' in msg
    assert "a run of the config 'emo-1m_demo_cls'" in msg
    assert issubclass(inferencer.__globals__['_checked'](DetInferencer, 'x', False),
                      DetInferencer)
