"""CheckpointFitHook: ``load_from`` (fine-tuning) stays partial; ``tools/test.py``
(``complete=True``) and a resuming runner need the whole model from the checkpoint."""
from types import SimpleNamespace

import pytest

import emo  # noqa: F401
from emo.apis import build_model_from_cfg
from emo.engine import IncompleteCheckpointError
from emo.engine.hooks import CheckpointFitHook


def test_partial_for_load_from_complete_for_test_and_resume():
    model = build_model_from_cfg('configs/demo/emo-1m_demo_cls.py')
    backbone = {k: v for k, v in model.state_dict().items() if k.startswith('backbone.')}

    def load(hook, resume=False):
        runner = SimpleNamespace(model=model, _load_from='bb.pth', _resume=resume)
        hook.after_load_checkpoint(runner, dict(state_dict=dict(backbone)))

    load(CheckpointFitHook())  # load_from: an ImageNet backbone for fine-tuning
    with pytest.raises(IncompleteCheckpointError, match='bb.pth: .* head.fc.weight'):
        load(CheckpointFitHook(complete=True))  # tools/test.py
    load(CheckpointFitHook(complete=True, allow_partial=True))  # --allow-partial
    for hook in (CheckpointFitHook(), CheckpointFitHook(complete=True, allow_partial=True)):
        with pytest.raises(IncompleteCheckpointError, match='head.fc.weight'):
            load(hook, resume=True)  # a resumed run continues all of the model
