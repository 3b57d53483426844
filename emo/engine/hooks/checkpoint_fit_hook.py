"""Checkpoints that are loaded whole or not at all (``load_from``, ``tools/test.py``,
``--resume``)."""
import logging

from mmengine.hooks import Hook
from mmengine.logging import print_log
from mmengine.model import is_model_wrapper
from mmengine.registry import HOOKS

from emo.models.utils.checkpoint import OFFICIAL_HEAD, official_to_mmpretrain

OFFICIAL_PREFIXES = ('stage0.', 'stage1.', 'stage2.', 'stage3.', 'stage4.', 'norm.')


def is_official_layout(checkpoint):
    """True for an official EMO file (``EMO_1M/net.pth``): a plain state_dict with the
    classifier's keys (``stage0.*`` ... ``stage4.*``, ``norm.*``, ``head.*``)."""
    if not isinstance(checkpoint, dict) or 'state_dict' in checkpoint or not checkpoint:
        return False
    keys = list(checkpoint)
    return (all(isinstance(k, str) for k in keys)
            and any(k.startswith('stage0.') for k in keys)
            and all(k.startswith(OFFICIAL_PREFIXES) or k in OFFICIAL_HEAD for k in keys))


@HOOKS.register_module()
class CheckpointFitHook(Hook):
    """Make a loaded checkpoint fit the model, or fail naming what does not.

    Runs first among the ``after_load_checkpoint`` hooks (``VERY_HIGH`` priority, before
    ``EMAHook``, which needs ``checkpoint['state_dict']``):

    - an official EMO file is converted in place to mmpretrain keys
      (``official_to_mmpretrain``: ``backbone.*``, ``head.fc.*``), and the log says so;
    - tensors whose shapes differ from the model's (another variant, another number of
      classes) are an error naming the keys and both shapes, where mmengine would only
      warn and go on with the rest of the weights;
    - a checkpoint of which no key fits the model is an error.

    Keys that are missing or unexpected (e.g. an ImageNet classifier loaded into a detector)
    are left to mmengine, which lists them by name as a warning: loading part of a network
    on purpose is what ``load_from`` is for.
    """

    priority = 'VERY_HIGH'

    def after_load_checkpoint(self, runner, checkpoint):
        if is_official_layout(checkpoint):
            converted = official_to_mmpretrain(checkpoint)
            checkpoint.clear()
            checkpoint['state_dict'] = converted
            checkpoint['meta'] = dict()
            print_log(f'{runner._load_from}: an official EMO checkpoint; converted its '
                      f'{len(converted)} keys to mmpretrain names (backbone.*, head.fc.*)',
                      logger='current', level=logging.INFO)
        state = checkpoint.get('state_dict', checkpoint)
        if not isinstance(state, dict):
            return
        model = runner.model.module if is_model_wrapper(runner.model) else runner.model
        own = model.state_dict()
        state = {k[7:] if k.startswith('module.') else k: v for k, v in state.items()}
        common = [k for k in state if k in own]
        name = runner._load_from
        if not common:
            raise ValueError(
                f'{name}: no key of the checkpoint fits {type(model).__name__} (file: '
                f'{", ".join(list(state)[:5])} ...; model: {", ".join(list(own)[:5])} ...)')
        bad = [f'{k}: checkpoint {tuple(state[k].shape)} vs model {tuple(own[k].shape)}'
               for k in common if hasattr(state[k], 'shape')
               and tuple(state[k].shape) != tuple(own[k].shape)]
        if bad:
            raise ValueError(
                f'{name}: {len(bad)} tensors do not fit the model (another variant or '
                f'number of classes?): ' + '; '.join(bad[:10])
                + (f' ... (+{len(bad) - 10} more)' if len(bad) > 10 else ''))
