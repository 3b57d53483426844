"""The ``coreml`` backend: an EMO classifier as an ``.mlpackage`` (ML program) that takes an
image.

coremltools converts on Linux; running the package (``MLModel.predict``) needs macOS,
and was not done here: the tests check the conversion and the package's interface
(inputs, outputs, class labels) by loading its spec. :class:`CoreMLModel` (the backend's
runtime model) checks a package and reads its metadata on any system; calling it is
refused off macOS, by name.

The config's normalisation is part of the package. ``ct.ImageType`` applies one scale
to every channel (``scale * pixel + bias[c]``), which cannot express mmpretrain's
per-channel std, so :class:`NormalizedClassifier` does ``(x - mean) / std`` as its first
(elementwise) ops on the 0-255 RGB image, and the image input has scale 1 and no bias.
The outputs are the class probabilities (softmax of the logits, as mmpretrain's
``ClsHead.predict``) and, through ``ct.ClassifierConfig``, the top class label.
"""
import json
import os.path as osp
import sys
from typing import List, Optional, Sequence, Tuple

import torch
import torch.nn as nn

from .program import export_program
from .registry import ExportSpec, ModelFileError, RuntimeModel, RuntimeUnavailable

__all__ = ['NormalizedClassifier', 'export_coreml', 'CoreMLModel', 'export_file']


class NormalizedClassifier(nn.Module):
    """0-255 RGB image (B, 3, H, W) -> class probabilities (B, num_classes):
    ``softmax(model((x - mean) / std, mode='tensor'))`` for an mmpretrain classifier."""

    def __init__(self, model: nn.Module, mean: Sequence[float], std: Sequence[float]):
        super().__init__()
        self.model = model
        self.register_buffer('mean', torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1))
        self.register_buffer('std', torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1))

    def forward(self, x):
        return torch.softmax(self.model((x - self.mean) / self.std, mode='tensor'), dim=1)


def _preprocessor_stats(model: nn.Module):
    """(mean, std, to_rgb) of an mmpretrain ``ClsDataPreprocessor``."""
    pre = model.data_preprocessor
    if not getattr(pre, '_enable_normalize', False):
        return (0.0, 0.0, 0.0), (1.0, 1.0, 1.0), bool(getattr(pre, 'to_rgb', False))
    mean = [float(v) for v in pre.mean.flatten()]
    std = [float(v) for v in pre.std.flatten()]
    return mean, std, bool(getattr(pre, 'to_rgb', False))


def _without_aliases(program):
    """``program`` with its ``aten.alias`` nodes (identities, e.g. of eval-mode
    dropout) bypassed: coremltools 9's torch.export frontend has no converter for them
    ("Unsupported fx node alias"), and its TorchScript frontend fails on EMO's shape
    arithmetic."""
    graph = program.graph_module.graph
    for node in list(graph.nodes):
        if node.op == 'call_function' and node.target == torch.ops.aten.alias.default:
            node.replace_all_uses_with(node.args[0])
            graph.erase_node(node)
    program.graph_module.recompile()
    return program


def export_coreml(model: nn.Module,
                  path: str,
                  shape: Tuple[int, int],
                  classes: Optional[Sequence[str]] = None,
                  metadata: Optional[dict] = None) -> str:
    """Convert the mmpretrain classifier ``model`` (eval / deploy form; changed in place
    by :func:`prepare_for_export`) to the ML program ``path`` (``.mlpackage``): input
    ``image`` (H x W = ``shape``, 0-255), outputs ``classLabel_probs`` (class ->
    probability) and ``classLabel`` (the top class). ``classes`` default to ``class_0 ...``;
    ``metadata`` strings go to the package's user-defined metadata. Returns ``path``.

    The image is RGB when the config converts BGR to RGB (``to_rgb=True``, the usual
    mmpretrain setting for images loaded by OpenCV); otherwise the package takes BGR."""
    import coremltools as ct

    if not str(path).endswith('.mlpackage'):
        raise ValueError(f'{path}: a Core ML ML program is saved as a .mlpackage')
    mean, std, to_rgb = _preprocessor_stats(model)
    wrapper = NormalizedClassifier(model, mean, std)
    num_classes = int(model.head.num_classes)
    classes = list(classes) if classes else [f'class_{i}' for i in range(num_classes)]
    if len(classes) != num_classes:
        raise ValueError(f'{len(classes)} class names for a {num_classes}-class model')
    h, w = (int(s) for s in shape)
    program = _without_aliases(
        export_program(wrapper, shape, dynamic_batch=False).run_decompositions({}))
    image = ct.ImageType(name='image', shape=(1, 3, h, w), scale=1.0,
                         bias=[0.0, 0.0, 0.0],
                         color_layout=ct.colorlayout.RGB if to_rgb else ct.colorlayout.BGR)
    mlmodel = ct.convert(program, inputs=[image], convert_to='mlprogram',
                         classifier_config=ct.ClassifierConfig(classes),
                         compute_precision=ct.precision.FLOAT32,
                         minimum_deployment_target=ct.target.iOS16)
    mlmodel.short_description = 'EMO image classifier (emo, OpenMMLab 2.0)'
    # the normalisation, for CoreMLModel to take the normalised batch of the protocol
    stats = dict(mean=json.dumps(mean), std=json.dumps(std), to_rgb=json.dumps(to_rgb))
    for key, value in dict(stats, **(metadata or {})).items():
        mlmodel.user_defined_metadata[str(key)] = str(value)
    mlmodel.save(path)
    if not osp.isdir(path):
        raise RuntimeError(f'coremltools did not write {path}')
    return path


def export_file(module: nn.Module, path: str, spec: ExportSpec) -> str:
    """The ``coreml`` backend's exporter: :func:`export_coreml` of the classifier inside
    the task wrapper ``module`` at ``spec.shape`` (batch 1), class labels from
    ``spec.metadata['classes']``."""
    model = getattr(module, 'model', module)
    if getattr(module, 'task', 'classification') != 'classification':
        raise ValueError(f'{path}: Core ML export is for classifiers, got a '
                         f'{module.task} model')
    classes = json.loads(spec.metadata['classes']) if spec.metadata.get('classes') else None
    return export_coreml(model, path, spec.shape, classes=classes, metadata=spec.metadata)


class CoreMLModel(RuntimeModel):
    """An ``.mlpackage`` written by :func:`export_coreml`: its spec is loaded and checked
    (a missing manifest or model, a damaged spec: a :class:`~emo.deployment.registry.
    ModelFileError`), ``metadata`` is its user-defined metadata, ``input_hw`` its image
    size, batch 1. Calling it needs macOS (Core ML's ``MLModel.predict``) and, there,
    runs the normalised batch by undoing the config's normalisation stored at export
    (not run here: no macOS)."""

    backend = 'coreml'

    def __init__(self, path: str, threads: Optional[int] = None, spinning: bool = True):
        self.path, self.threads = path, threads
        manifest = osp.join(path, 'Manifest.json')
        if not osp.isdir(path) or not osp.isfile(manifest):
            raise ModelFileError(path, 'is not a Core ML package: a .mlpackage is a folder '
                                 'with a Manifest.json; export it again')
        try:
            with open(manifest) as f:
                json.load(f)
        except ValueError as e:
            raise ModelFileError(path, f'its Manifest.json is damaged or truncated ({e}); '
                                 'export it again') from None
        import coremltools as ct
        try:
            spec = ct.utils.load_spec(path)
        except Exception as e:  # a damaged manifest, a missing or truncated model
            raise ModelFileError(path, f'coremltools cannot read the package '
                                 f'({type(e).__name__}: {e}); export it again') from None
        self.spec = spec
        self.metadata = dict(spec.description.metadata.userDefined)
        image = spec.description.input[0].type.imageType
        self.input_hw = (int(image.height), int(image.width))
        self.max_batch = 1
        self.output_names = ['logits']

    def __call__(self, x: torch.Tensor) -> List[torch.Tensor]:
        self.check_input(x)
        if sys.platform != 'darwin':
            raise RuntimeUnavailable(f'{self.path}: Core ML runs packages on macOS only '
                               f'(this is {sys.platform})')
        import coremltools as ct
        from PIL import Image
        meta = self.metadata
        if not meta.get('mean') or not meta.get('std'):
            raise ValueError(f'{self.path} records no normalisation (mean, std): export '
                             'it again with tools/deployment/export.py')
        mean = torch.tensor(json.loads(meta['mean'])).view(1, 3, 1, 1)
        std = torch.tensor(json.loads(meta['std'])).view(1, 3, 1, 1)
        pixels = (x * std + mean).round().clamp(0, 255).to(torch.uint8)
        model = ct.models.MLModel(self.path)
        probs_name = self.spec.description.predictedProbabilitiesName
        labels = json.loads(meta['classes']) if meta.get('classes') else None
        out = []
        for img in pixels.permute(0, 2, 3, 1).numpy():
            probs = model.predict({'image': Image.fromarray(img)})[probs_name]
            keys = labels or sorted(probs, key=lambda k: int(str(k).rsplit('_', 1)[-1]))
            out.append(torch.tensor([float(probs[k]) for k in keys]).clamp_min(1e-30).log())
        return [torch.stack(out)]

