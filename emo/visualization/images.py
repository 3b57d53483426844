"""Images in, pictures out: what the visualization tools share.

* :func:`list_images`: image files of a path (a file, or a folder's images, sorted);
* :func:`load_inputs`: images through the config's test pipeline (optionally resized to
  a size of one's choice) and the model's data preprocessor: the network's input and
  the RGB picture of exactly what it sees;
* :func:`load_model`: the model of a config with a checkpoint, or seeded random weights;
* :func:`save_figure`: a matplotlib figure to a PNG (Agg backend, no display needed);
* :func:`finish_figure`: the pictures' labelled colour bar and title;
* :func:`figure_parser`: the tools' command line: their examples, CONFIG and CHECKPOINT
  (a file, or ``random``).
"""
import argparse
import os
import os.path as osp
from typing import List, Optional, Sequence, Tuple

import numpy as np

__all__ = ['IMAGE_EXTENSIONS', 'list_images', 'load_inputs', 'load_model', 'save_figure',
           'pyplot', 'finish_figure', 'figure_parser']

IMAGE_EXTENSIONS = ('.jpg', '.jpeg', '.png', '.bmp', '.ppm', '.pgm', '.tif', '.tiff',
                    '.webp')


def list_images(path: str) -> List[str]:
    """``[path]`` for an image file; the image files of a folder (recursively, sorted);
    a clear error when there is none."""
    if osp.isfile(path):
        return [path]
    if not osp.isdir(path):
        raise FileNotFoundError(f'no such image or folder: {path}')
    found = sorted(osp.join(root, f) for root, _, files in os.walk(path) for f in files
                   if f.lower().endswith(IMAGE_EXTENSIONS))
    if not found:
        raise FileNotFoundError(f'{path}: no image files ({", ".join(IMAGE_EXTENSIONS)})')
    return found


def load_inputs(cfg, model, paths: Sequence[str],
                shape: Optional[Tuple[int, int]] = None):
    """``(inputs, pictures)`` for the image files ``paths``: ``inputs`` (B, 3, H, W), the
    config's test pipeline and the model's data preprocessor applied (what the network
    is fed); ``pictures`` the (H, W, 3) uint8 RGB images the pipeline produced (what the
    network sees, before normalisation). ``shape`` (H, W) resizes the pipeline's output
    to that size (for maps of a chosen resolution); all images must come out at one
    size (a classifier's centre crop does that)."""
    from mmengine.dataset import Compose, default_collate
    from mmengine.registry import init_default_scope

    from emo.apis import inference_pipeline_cfg
    init_default_scope(cfg.get('default_scope', 'mmpretrain'))
    steps = inference_pipeline_cfg(cfg)
    if shape is not None:
        steps.insert(len(steps) - 1, dict(type='Resize', scale=(int(shape[1]), int(shape[0])),
                                          keep_ratio=False))
    pipeline = Compose(steps)
    items = []
    for path in paths:
        try:
            items.append(pipeline(dict(img_path=path)))
        except Exception as e:  # a file that is no image: name it
            raise ValueError(f'{path}: cannot be read as an image ({e})') from e
    sizes = {tuple(item['inputs'].shape[-2:]) for item in items}
    if len(sizes) > 1:
        raise ValueError(f'the images come out of the test pipeline at different sizes '
                         f'{sorted(sizes)}: give --shape H W')
    data = model.data_preprocessor(default_collate(items), False)
    pictures = [item['inputs'].permute(1, 2, 0).numpy() for item in items]
    if getattr(model.data_preprocessor, '_channel_conversion', False):
        pictures = [p[..., ::-1] for p in pictures]  # loaded as BGR, fed as RGB
    return data['inputs'].float(), [np.ascontiguousarray(p, np.uint8) for p in pictures]


def pyplot():
    """matplotlib.pyplot on the Agg backend (files only, no display)."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    return plt


def finish_figure(fig, image, axes, label: str, title: str, fraction: float = 0.025):
    """The tools' last touch on ``fig``: a colour bar for ``image`` (what ``imshow``
    returned) beside ``axes``, labelled ``label``, and the title; returns ``fig``."""
    bar = fig.colorbar(image, ax=list(np.ravel(axes)), fraction=fraction, pad=0.02)
    bar.set_label(label, fontsize=7)
    bar.ax.tick_params(labelsize=7)
    fig.suptitle(title, fontsize=9)
    return fig


def save_figure(fig, path: str, dpi: int = 100):
    """Write ``fig`` to ``path`` (its folder made) and close it."""
    folder = osp.dirname(osp.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fig.savefig(path, dpi=dpi, bbox_inches='tight')
    pyplot().close(fig)
    return path


#: the checkpoint argument that asks for random weights (seeded: ``RANDOM_SEED``)
RANDOM = 'random'
RANDOM_SEED = 0


def figure_parser(doc: str, description: str,
                  config_help: str = 'config file (any task: its EMO backbone is used)'):
    """The argument parser of a visualization tool: ``description``, the examples of the
    tool's docstring ``doc`` (from ``Examples:``) as the epilog, and the positional CONFIG
    and CHECKPOINT (a file, or ``random``: see :func:`load_model`)."""
    parser = argparse.ArgumentParser(description=description,
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog='Examples:' + doc.split('Examples:')[1])
    parser.add_argument('config', help=config_help)
    parser.add_argument('checkpoint', help=f"checkpoint file, or '{RANDOM}' (seeded "
                        'initialisation: the network before training)')
    return parser


def load_model(cfg, checkpoint: str, deploy: bool = False):
    """The model of ``cfg`` in eval mode with the weights of ``checkpoint``, or, for
    ``checkpoint='random'``, the config's initialisation under seed 0 (the network
    before training)."""
    import torch

    from emo.apis import build_model_from_cfg
    if checkpoint == RANDOM:
        torch.manual_seed(RANDOM_SEED)
        model = build_model_from_cfg(cfg, mode='train')
        model.init_weights()
        if deploy:
            from emo.apis import reparameterize_model
            model.eval()
            reparameterize_model(model)
        return model.eval()
    return build_model_from_cfg(cfg, checkpoint=checkpoint, deploy=deploy)
