"""Inference of an exported model, any runtime, with the config's own pre- and
post-processing.

The deployed counterpart of mmpretrain's ``ImageClassificationInferencer``, mmdet's
``DetInferencer`` and mmseg's ``MMSegInferencer``: the image goes through the config's
test pipeline (``LoadAnnotations`` dropped) and the model's ``data_preprocessor``
(normalisation, padding), the exported graph runs in its runtime (the registry's
runtime model, :mod:`emo.deployment.registry`, chosen by the file's extension:
``.onnx`` ONNX Runtime, ``.pte`` ExecuTorch, ``.xml`` OpenVINO, or by ``backend``), and
the outputs go through the same post-processing the PyTorch model applies:

* classification: softmax of the logits (``ClsHead.predict``);
* detection: ``bbox_head.predict_by_feat`` (anchors, box decoding, score threshold, NMS,
  rescale to the original image) on the raw head outputs;
* segmentation: ``EncoderDecoder.postprocess_result`` (crop padding, bilinear resize to
  the original image, argmax).

The post-processing modules are built from the config (no checkpoint: they hold no
learned weights).
"""
import json
from typing import List, Optional, Sequence

import torch
from mmengine.config import Config
from mmengine.dataset import Compose, pseudo_collate

from ..apis.builder import build_model_from_cfg, dataset_meta, inference_pipeline_cfg, task_of
from .onnx import ORTModel  # noqa: F401  (importable from here, as before)
from .registry import BACKENDS, load_runtime

__all__ = ['DeployInferencer', 'ONNXInferencer', 'ORTModel', 'load_runtime', 'BACKENDS']


class DeployInferencer:
    """Run an exported model on image files with the config's processing.

    Args:
        model (str): the exported file, written by ``tools/deployment/export.py`` (or
            the ``emo.deployment`` export functions with the task wrappers' output
            names): ``.onnx``, ``.pte``, ``.xml`` (any extension of the registry).
        config (str | Config): the model's config.
        threads (int | None): the runtime's threads.
        cfg_options (dict | None): overrides merged into the config.
        backend (str | None): a name of :data:`~emo.deployment.registry.BACKENDS`
            ('onnxruntime', 'executorch', 'openvino', ...); None: by the file
            extension.
    """

    def __init__(self, model: str, config, threads: Optional[int] = None,
                 cfg_options: Optional[dict] = None, backend: Optional[str] = None):
        cfg = config if isinstance(config, Config) else Config.fromfile(config)
        if cfg_options:
            cfg.merge_from_dict(cfg_options)
        self.cfg = cfg
        self.runtime = load_runtime(model, threads, backend)  # a bad file fails first
        self.model = build_model_from_cfg(cfg)
        self.task = task_of(self.model)
        self.path = model
        meta = self.runtime.metadata
        if meta.get('task') and meta['task'] != self.task:
            raise ValueError(f'{model} was exported for {meta["task"]}, but the config '
                             f'{cfg.filename} builds a {self.task} model')
        self.dataset_meta = dataset_meta(cfg)
        if meta.get('classes'):
            self.dataset_meta['classes'] = tuple(json.loads(meta['classes']))
        self.pipeline = Compose(inference_pipeline_cfg(cfg))
        self.output_names = self.runtime.output_names

    def preprocess(self, images: Sequence[str]):
        """Image files -> (normalised batch (B, 3, H, W), data samples)."""
        data = pseudo_collate([self.pipeline(dict(img_path=img)) for img in images])
        with torch.no_grad():
            data = self.model.data_preprocessor(data, False)
        return data['inputs'], data['data_samples']

    def forward(self, inputs: torch.Tensor) -> List[torch.Tensor]:
        """The graph's outputs for ``inputs`` (B, 3, H, W), as tensors."""
        return self.runtime(inputs)

    def postprocess(self, outputs: List[torch.Tensor], data_samples):
        """Raw outputs -> data samples with the task's predictions, as PyTorch makes."""
        if self.task == 'classification':
            scores = torch.softmax(outputs[0], dim=1)
            for ds, score in zip(data_samples, scores):
                ds.set_pred_score(score).set_pred_label(score.argmax(0, keepdim=True))
            return data_samples
        if self.task == 'segmentation':
            return self.model.postprocess_result(outputs[0], data_samples)
        named = dict(zip(self.output_names, outputs))
        levels = sum(n.startswith('cls_score_') for n in self.output_names)
        if not levels or any(f'bbox_pred_{i}' not in named for i in range(levels)):
            raise ValueError(f'{self.path}: a detection model needs the outputs '
                             f'cls_score_i and bbox_pred_i, got {self.output_names}')
        cls_scores = [named[f'cls_score_{i}'] for i in range(levels)]
        bbox_preds = [named[f'bbox_pred_{i}'] for i in range(levels)]
        with torch.no_grad():
            results = self.model.bbox_head.predict_by_feat(
                cls_scores, bbox_preds, batch_img_metas=[d.metainfo for d in data_samples],
                rescale=True)
        return self.model.add_pred_to_datasample(data_samples, results)

    def __call__(self, images: Sequence[str]):
        """Image files -> data samples with predictions (``pred_score`` / ``pred_label``,
        ``pred_instances`` with boxes in original-image pixels, or ``pred_sem_seg`` at
        the original size)."""
        if isinstance(images, str):
            images = [images]
        inputs, data_samples = self.preprocess(images)
        return self.postprocess(self.forward(inputs), data_samples)


class ONNXInferencer(DeployInferencer):
    """:class:`DeployInferencer` on ONNX Runtime (the name before other runtimes)."""

    def __init__(self, model: str, config, threads: Optional[int] = None,
                 cfg_options: Optional[dict] = None):
        super().__init__(model, config, threads, cfg_options, backend='onnxruntime')
