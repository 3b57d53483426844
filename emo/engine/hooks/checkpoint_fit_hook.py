"""The runner's checkpoints (``load_from``, ``tools/test.py CKPT``, ``--resume``) fit the
model or fail naming what does not (:func:`emo.models.utils.state_dict.fit_checkpoint`)."""
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper
from mmengine.registry import HOOKS

from emo.models.utils.state_dict import fit_checkpoint


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
        model = runner.model.module if is_model_wrapper(runner.model) else runner.model
        fit_checkpoint(model, checkpoint, runner._load_from)
