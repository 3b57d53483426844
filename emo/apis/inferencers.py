"""The libraries' inferencers with the project's weight check.

mmpretrain's ``ImageClassificationInferencer``, mmdet's ``DetInferencer`` and mmseg's
``MMSegInferencer`` load a checkpoint with mmengine's ``load_checkpoint`` /
``_load_checkpoint_to_model``, which loads whatever keys match and only warns about the
rest: given another task's checkpoint they predict with a random head.
:func:`inferencer` returns the same inferencer (same class, same calls and results) whose
weights went through :func:`emo.models.utils.state_dict.fit_checkpoint` with
``complete=True``, as ``tools/test.py`` and the deployment tools load them: an official
EMO file is converted, other shapes are an error, and a checkpoint that leaves any tensor
the model uses unfilled is an :class:`~emo.engine.safe_io.IncompleteCheckpointError`
naming the missing keys and the config the file belongs to (``allow_partial=True``: a
loud warning instead).
"""
from typing import Optional, Union

from mmengine.config import Config

__all__ = ['inferencer']


def _checked(cls, weights, allow_partial):
    """``cls`` (an mmengine ``BaseInferencer`` subclass) whose ``_load_weights_to_model``
    checks the checkpoint first (mmdet's and mmseg's inferencers load there)."""
    from emo.models.utils.state_dict import fit_checkpoint

    def _load_weights_to_model(self, model, checkpoint, cfg):
        if checkpoint is not None:
            fit_checkpoint(model, checkpoint, weights, complete=True,
                           allow_partial=allow_partial)
        super(checked, self)._load_weights_to_model(model, checkpoint, cfg)

    checked = type(cls.__name__, (cls, ), dict(
        _load_weights_to_model=_load_weights_to_model, __module__=__name__,
        __doc__=f'{cls.__name__} whose weights must fill the model (emo.apis.inferencer).'))
    return checked


def inferencer(config: Union[str, Config], checkpoint: Optional[str],
               device: Optional[str] = None, allow_partial: bool = False,
               compile: bool = False, **kwargs):
    """The inferencer of ``config``'s library (by its ``default_scope``) with
    ``checkpoint`` loaded through the project's check.

    Args:
        config: an EMO config (file or Config) of any task.
        checkpoint: its weights; ``None`` builds the inferencer with random weights (the
            library warns), for testing.
        device: ``'cpu'``, ``'cuda:0'`` ... (the library's default when None).
        allow_partial: accept a checkpoint that fills only part of the model (the rest
            keeps its random initialisation; the log lists it).
        compile: compile the model for inference with Inductor after loading the
            weights (:func:`emo.deployment.inductor.compile_model`: freezing, one static
            graph per input shape; the first call at each shape compiles).
        kwargs: passed to the inferencer (``classes=``, ``palette=``, ...).

    Returns:
        ``mmpretrain.ImageClassificationInferencer``, ``mmdet.apis.DetInferencer`` or
        ``mmseg.apis.MMSegInferencer`` (for detection and segmentation a subclass of the
        same name that only adds the check).
    """
    from emo.apis.builder import TASKS, load_weights
    cfg = Config.fromfile(config) if isinstance(config, str) else config
    scope = cfg.get('default_scope', 'mmpretrain')
    if scope not in TASKS:
        raise ValueError(f'{config}: default_scope is {scope!r}; expected one of '
                         f'{tuple(TASKS)}')
    if scope == 'mmpretrain':
        from mmpretrain import ImageClassificationInferencer, get_model
        model = get_model(cfg, pretrained=None, device='cpu')  # config's classes
        if checkpoint:
            meta = load_weights(model, checkpoint, allow_partial=allow_partial)
            if meta:
                model._dataset_meta = meta
        if device is not None:
            model.to(device)
        result = ImageClassificationInferencer(model, pretrained=False, device=device,
                                               **kwargs)
    else:
        if scope == 'mmdet':
            from mmdet.apis import DetInferencer as cls
        else:
            from mmseg.apis import MMSegInferencer as cls
        result = _checked(cls, checkpoint, allow_partial)(model=cfg, weights=checkpoint,
                                                          device=device, **kwargs)
    if compile:  # after the weights: freezing reads them at the first call
        from emo.deployment.inductor import compile_model
        compile_model(result.model)
    return result
