"""What the paper's pictures are made of, for ``tools/visualization/`` (vis_cam.py,
feature_similarity.py, vis_attention.py, vis_erf.py), read from the network's own
modules by forward hooks:

* :mod:`emo.visualization.probes`: block features, diagonal feature similarity, the
  attention weights of a pixel, strided-grid windows, the effective receptive field and
  the theoretical one;
* :mod:`emo.visualization.cam`: class activation maps (the ``grad-cam`` package) with
  EMO's default target layers;
* :mod:`emo.visualization.images`: images through a config's test pipeline, PNG output.
"""
from .cam import CAM_METHODS, class_activation_maps, default_target_layers, get_layer
from .images import finish_figure, list_images, load_inputs, load_model, pyplot, save_figure
from .probes import (AttentionRecorder, attention_blocks, block_features,
                     diagonal_similarity, effective_receptive_field, find_backbone,
                     fixed_se_gates, get_block, theoretical_support, window_mask,
                     window_positions, without_attention)

__all__ = [
    'CAM_METHODS', 'class_activation_maps', 'default_target_layers', 'get_layer',
    'finish_figure', 'list_images', 'load_inputs', 'load_model', 'pyplot', 'save_figure',
    'AttentionRecorder',
    'attention_blocks', 'block_features', 'diagonal_similarity',
    'effective_receptive_field', 'find_backbone', 'fixed_se_gates', 'get_block',
    'theoretical_support', 'window_mask', 'window_positions', 'without_attention'
]
