"""Building and running EMO models from configs (mmpretrain's ``apis`` convention).

* :mod:`emo.apis.builder`: builds any task's model from its config (eval or train mode,
  a checkpoint, the deploy form) and knows the config's input size and data set meta;
  every tool and test builds models through it;
* :mod:`emo.apis.inferencers`: :func:`inferencer`, the library's inferencer of a config
  (mmpretrain / mmdet / mmseg) with the checkpoint loaded through the project's check;
* :mod:`emo.apis.launch`: what ``tools/train.py`` and ``tools/test.py`` share.
"""
from .builder import (build_model_from_cfg, dataset_meta, default_shape,
                      inference_pipeline_cfg, load_weights, reparameterize_model, task_of)
from .inferencers import inferencer

__all__ = ['build_model_from_cfg', 'load_weights', 'reparameterize_model', 'task_of',
           'default_shape', 'dataset_meta', 'inference_pipeline_cfg', 'inferencer']
