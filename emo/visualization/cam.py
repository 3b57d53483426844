"""Class activation maps of classifiers with the ``grad-cam`` package (pytorch_grad_cam,
the library mmpretrain's ``vis_cam.py`` uses), with target layers that make sense for EMO.

Default target layer of an EMO classifier (:func:`default_target_layers`): the output of
the deepest stage whose map is at least 7x7 at the input size: ``backbone.norm`` (the
LayerNorm after stage 4, the map the classifier pools) at 224, stage 2 on the 64x64 demo
images. Any module of the model can be named instead, as a dotted path with list indices
(``backbone.stage3.7``, ``backbone.stage4.-1.conv_local``).
"""
from typing import List, Optional, Sequence

import numpy as np
import torch
import torch.nn as nn

__all__ = ['CAM_METHODS', 'get_layer', 'default_target_layers', 'class_activation_maps']

#: ``--method`` names -> pytorch_grad_cam class names (those that take a classifier
#: and target layers of (B, C, h, w) maps)
CAM_METHODS = {
    'gradcam': 'GradCAM', 'gradcam++': 'GradCAMPlusPlus', 'xgradcam': 'XGradCAM',
    'hirescam': 'HiResCAM', 'gradcamelementwise': 'GradCAMElementWise',
    'layercam': 'LayerCAM', 'eigencam': 'EigenCAM', 'eigengradcam': 'EigenGradCAM',
    'scorecam': 'ScoreCAM', 'ablationcam': 'AblationCAM', 'finercam': 'FinerCAM',
    'shapleycam': 'ShapleyCAM', 'kpcacam': 'KPCA_CAM', 'randomcam': 'RandomCAM',
}


def get_layer(model: nn.Module, name: str) -> nn.Module:
    """The module ``name`` of ``model``: a dotted path, list items by index
    (``backbone.stage3.-1``); a clear error naming what exists."""
    module = model
    for i, part in enumerate(name.split('.')):
        where = '.'.join(name.split('.')[:i]) or type(model).__name__
        if isinstance(module, (nn.ModuleList, nn.Sequential)) and \
                part.lstrip('-').isdigit():
            index = int(part)
            if not -len(module) <= index < len(module):
                raise ValueError(f'target layer {name!r}: {where} has {len(module)} items')
            module = module[index]
        elif part in dict(module.named_children()):
            module = getattr(module, part)
        else:
            children = sorted(dict(module.named_children()))
            raise ValueError(f'target layer {name!r}: {where} has no {part!r}; it has '
                             f'{children}')
    return module


#: the smallest map side a default target layer has (Grad-CAM's resolution: 7x7 is
#: stage 4 at 224, the map the classifier pools)
MIN_CAM_SIZE = 7


def default_target_layers(model: nn.Module, input_size=None) -> List[str]:
    """The default target layer of a classifier for inputs of ``input_size`` (H, W):
    for EMO, the output of the deepest stage whose map is at least 7x7 (``MIN_CAM_SIZE``)
    at that size: ``backbone.norm`` (stage 4 after the classifier's final norm) at 224,
    ``backbone.stage2.-1`` at the demo's 64 (stage 4 is 2x2 there; on the trained demo
    classifier its maximum falls in the object's box less often than chance); without
    a size, stage 4. For another backbone, the last module of its last stage."""
    backbone = getattr(model, 'backbone', None)
    if backbone is None:
        raise TypeError(f'{type(model).__name__} has no backbone: name --target-layers')
    if callable(getattr(backbone, 'feature_shapes', None)) and hasattr(backbone, 'stages'):
        stage = 4
        if input_size is not None:
            shapes = backbone.feature_shapes(input_size)
            fits = [s for s in range(1, 5) if min(shapes[s]) >= MIN_CAM_SIZE]
            stage = fits[-1] if fits else 1
        if stage == 4 and getattr(backbone, 'final_norm', False):
            return ['backbone.norm']
        return [f'backbone.stage{stage}.-1']
    for name in ('stage4', 'layer4', 'stages', 'layers'):
        if isinstance(getattr(backbone, name, None), (nn.ModuleList, nn.Sequential)):
            return [f'backbone.{name}.-1']
    raise TypeError(f'no default target layer for {type(backbone).__name__}: name '
                    '--target-layers')


class _Logits(nn.Module):
    """The classifier as pytorch_grad_cam wants it: images -> logits (B, classes)."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, x):
        return self.model(x, mode='tensor')


def class_activation_maps(model: nn.Module, inputs: torch.Tensor,
                          target_layers: Optional[Sequence[str]] = None,
                          method: str = 'gradcam',
                          categories: Optional[Sequence[int]] = None,
                          eigen_smooth: bool = False, aug_smooth: bool = False):
    """CAMs of ``inputs`` (B, 3, H, W, the data preprocessor's output) for ``model``
    (an mmpretrain classifier in eval mode).

    Returns a dict: ``cams`` (B, H, W) float32 in [0, 1] (pytorch_grad_cam's maps: each
    layer's ReLU'd map min-max scaled and resized to the input, then averaged over the
    layers), ``raw`` (per target layer, the (B, h, w) maps before ReLU and scaling),
    ``categories`` (the class of each image the maps explain: ``categories`` or the
    predicted one) and ``scores`` (softmax of the logits)."""
    import pytorch_grad_cam
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget
    if method.lower() not in CAM_METHODS:
        raise ValueError(f'unknown CAM method {method!r}; choose from {sorted(CAM_METHODS)}')
    names = list(target_layers or default_target_layers(model, inputs.shape[-2:]))
    layers = [get_layer(model, n) for n in names]
    cls = getattr(pytorch_grad_cam, CAM_METHODS[method.lower()])
    wrapper = _Logits(model).eval()
    with torch.no_grad():
        logits = wrapper(inputs)
    if categories is None:
        categories = logits.argmax(-1).tolist()
    elif len(categories) == 1 and len(inputs) > 1:
        categories = list(categories) * len(inputs)
    num = logits.shape[-1]
    bad = [c for c in categories if not 0 <= c < num]
    if bad:
        raise ValueError(f'target category {bad[0]} out of range: the model has {num} '
                         f'classes (0..{num - 1})')
    targets = [ClassifierOutputTarget(int(c)) for c in categories]
    cam = cls(model=wrapper, target_layers=layers)
    try:
        cams = cam(input_tensor=inputs, targets=targets, eigen_smooth=eigen_smooth,
                   aug_smooth=aug_smooth)
        raw = []
        if not aug_smooth:  # the maps of the last forward, before ReLU and scaling
            grads = cam.activations_and_grads.gradients
            acts = cam.activations_and_grads.activations
            for i, layer in enumerate(layers):
                g = grads[i].numpy() if i < len(grads) else None
                raw.append(cam.get_cam_image(inputs, layer, targets, acts[i].numpy(), g,
                                             eigen_smooth))
    finally:
        cam.activations_and_grads.release()
    return dict(cams=np.asarray(cams, np.float32), raw=raw, layers=names,
                categories=[int(c) for c in categories], scores=logits.softmax(-1))
