"""What ``tools/train.py`` and ``tools/test.py`` share: one entry for every task.

The library is picked from the config's ``default_scope`` (mmpretrain, mmdet, mmseg); the
few places where the three stock tools differ (visualisation hooks, result dumping,
workers) are handled here.
"""
import argparse
import json
import os
import os.path as osp

import numpy as np
from mmengine.config import Config, DictAction  # noqa: F401  (DictAction for the tools)

from .builder import dataset_cfgs

SCOPES = ('mmpretrain', 'mmdet', 'mmseg')


def add_common_args(parser):
    """``--cfg-options``, ``--launcher`` and ``--local-rank``, as every OpenMMLab tool has."""
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config settings, key=value pairs '
                        '(e.g. train_dataloader.dataset.data_root=data/my_set)')
    parser.add_argument('--launcher', choices=['none', 'pytorch', 'slurm', 'mpi'],
                        default='none', help='job launcher')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)


def parse_args(parser, argv=None):
    args = parser.parse_args(argv)
    os.environ.setdefault('LOCAL_RANK', str(args.local_rank))
    return args


class ShapeAction(argparse.Action):
    """``--shape H W`` or ``--shape N`` (a square) -> ``(H, W)``: the one parser of the
    tools' input sizes (``type=int, nargs='+'``); other counts are a usage error."""

    def __call__(self, parser, namespace, values, option_string=None):
        if len(values) not in (1, 2):
            parser.error(f'{option_string} takes H W or one size')
        if min(values) < 1:
            parser.error(f'{option_string} sizes must be >= 1')
        setattr(namespace, self.dest, tuple(values) * (3 - len(values)))


def add_shape_argument(parser, help):
    """``--shape H W`` (or one size for a square) as a tuple (H, W), None when not given."""
    parser.add_argument('--shape', type=int, nargs='+', metavar='N', action=ShapeAction,
                        help=help)


def add_allow_partial_argument(parser):
    """``--allow-partial`` of the tools that load a checkpoint for a result
    (:func:`emo.apis.load_weights` ``allow_partial``)."""
    parser.add_argument('--allow-partial', action='store_true',
                        help='accept a checkpoint that fills only part of the model (the '
                        'rest keeps its initialisation); by default every tensor the '
                        'model uses must come from CHECKPOINT (docs/reliability.md)')


def build_runner(cfg):
    """The config's runner (``runner_type`` when given, else mmengine's Runner). With
    ``launcher='pytorch'`` and no CUDA, the processes talk through gloo and the model is
    wrapped for the CPU (``emo.engine.dist``)."""
    from mmengine.registry import RUNNERS
    from mmengine.runner import Runner

    from emo.engine.dist import setup_cpu_dist
    setup_cpu_dist(cfg)
    add_checkpoint_and_data_checks(cfg)
    if cfg.get('compile'):  # the optimizer step outside Dynamo (emo/engine/hooks/compile_hook)
        add_custom_hooks(cfg, ('EagerOptimStepHook', ))
    return Runner.from_cfg(cfg) if 'runner_type' not in cfg else RUNNERS.build(cfg)


def add_custom_hooks(cfg, types):
    """Append ``dict(type=t)`` to ``custom_hooks`` for each of ``types`` the config does
    not have yet."""
    hooks = list(cfg.get('custom_hooks') or [])
    present = {h.get('type') for h in hooks}
    hooks.extend(dict(type=t) for t in types if t not in present)
    cfg.custom_hooks = hooks  # assign after extending: Config copies a list it is given


def add_checkpoint_and_data_checks(cfg):
    """Checkpoints and data that fail loudly (``emo.engine``): ``CheckpointFitHook``
    (official EMO files converted, wrong shapes an error), ``DataCheckHook`` (COCO classes,
    segmentation labels), ``SafeCheckpointHook`` (old checkpoints removed only after the
    new one is written), and ``--resume`` without a file skips an incomplete newest one."""
    from emo.engine import resolve_resume, use_safe_checkpoint_hook
    add_custom_hooks(cfg, ('CheckpointFitHook', 'DataCheckHook'))
    use_safe_checkpoint_hook(cfg)
    resolve_resume(cfg)


def add_training_hooks(cfg):
    """EMO's training hooks, unless the config has them: ``RNGStateHook`` (random-generator
    states in checkpoints, exact ``--resume``) and ``StopOnInvalidLossHook`` (a NaN / inf
    loss stops the run at that iteration)."""
    add_custom_hooks(cfg, ('RNGStateHook', 'StopOnInvalidLossHook'))


def load_config(path, cfg_options=None, work_dir=None):
    """Load a config, merge ``--cfg-options`` and set ``work_dir``
    (default ``work_dirs/<config name>``). Raises on an unknown ``default_scope``."""
    if not osp.isfile(path):
        raise FileNotFoundError(f'config file not found: {path}')
    cfg = Config.fromfile(path)
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    scope = cfg.get('default_scope')
    if scope not in SCOPES:
        raise ValueError(f'{path}: default_scope is {scope!r}; this project runs configs of '
                         f'{SCOPES}')
    if work_dir is not None:
        cfg.work_dir = work_dir
    elif cfg.get('work_dir') is None:
        cfg.work_dir = osp.join('work_dirs', osp.splitext(osp.basename(path))[0])
    return cfg


def _datasets(cfg):
    """(split, dataset cfg) for every dataset of the config, wrappers unrolled."""
    for split in ('train', 'val', 'test'):
        loader = cfg.get(f'{split}_dataloader')
        if not loader:
            continue
        for ds in dataset_cfgs(loader.get('dataset')):
            yield split, ds


def check_data(cfg, splits=('train', 'val', 'test')):
    """Fail early, naming the path and the option to change, when data are missing."""
    for split, ds in _datasets(cfg):
        if split not in splits:
            continue
        root = ds.get('data_root')
        if root and not osp.isdir(root):
            raise FileNotFoundError(
                f'{split} data root {root!r} does not exist; put the data there or pass '
                f'--cfg-options {split}_dataloader.dataset.data_root=PATH (for a wrapped '
                f'data set: {split}_dataloader.dataset.dataset.data_root=PATH)')
        ann = ds.get('ann_file')
        if ann:
            path = ann if osp.isabs(ann) or not root else osp.join(root, ann)
            if not osp.exists(path):
                raise FileNotFoundError(f'{split} annotation file {path!r} does not exist')


def fix_dataloader(loader):
    """``persistent_workers`` needs workers: drop it from the dataloader config ``loader``
    when its ``num_workers`` is 0; returns ``loader``."""
    if loader and loader.get('num_workers', 0) == 0 and loader.get('persistent_workers'):
        loader['persistent_workers'] = False
    return loader


def fix_dataloaders(cfg):
    """:func:`fix_dataloader` for the config's train, val and test dataloaders."""
    for split in ('train', 'val', 'test'):
        fix_dataloader(cfg.get(f'{split}_dataloader'))


def enable_visualization(cfg, show=False, show_dir=None, wait_time=2.0):
    """Turn on the scope's visualization hook: draw predictions to ``show_dir``."""
    if not (show or show_dir):
        return
    hooks = cfg.default_hooks
    if 'visualization' not in hooks:
        raise KeyError('the config has no default_hooks.visualization to draw with')
    hook = hooks.visualization
    scope = cfg.default_scope
    if scope == 'mmpretrain':
        hook.enable = True
        if show_dir:
            hook.out_dir = show_dir
    elif scope == 'mmdet':
        hook.draw = True
        if show_dir:
            hook.test_out_dir = show_dir
    else:  # mmseg: the visualizer saves the drawings
        hook.draw = True
        hook.interval = 1  # mmseg 1.2.2 draws only every 50th image by default
        if show_dir:
            cfg.visualizer.save_dir = show_dir
    if show:
        hook.show = True
        hook.wait_time = wait_time


def add_result_dump(runner, out):
    """``--out``: predictions as a pickle (classification, detection) or, for
    segmentation, the predicted masks as PNG files in the folder ``out``."""
    scope = runner.cfg.default_scope
    if scope == 'mmseg':
        for metric in runner.test_evaluator.metrics:
            if hasattr(metric, 'output_dir'):
                metric.output_dir = out
                metric.format_only = False
                os.makedirs(out, exist_ok=True)
        return
    if not out.endswith(('.pkl', '.pickle')):
        raise ValueError(f'--out must be a .pkl/.pickle file, got {out}')
    if scope == 'mmdet':
        from mmdet.evaluation import DumpDetResults
        runner.test_evaluator.metrics.append(DumpDetResults(out_file_path=out))
    else:
        from mmengine.evaluator import DumpResults
        runner.test_evaluator.metrics.append(DumpResults(out_file_path=out))


def to_builtin(obj):
    """numpy scalars/arrays (mmseg's IoUMetric returns float32) -> JSON-safe values."""
    if isinstance(obj, dict):
        return {k: to_builtin(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_builtin(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, np.generic):
        return obj.item()
    return obj


def save_metrics(metrics, work_dir, name):
    """Write ``metrics`` to ``work_dir/name`` as JSON and return the JSON text."""
    text = json.dumps(to_builtin(metrics), indent=1, sort_keys=True)
    os.makedirs(work_dir, exist_ok=True)
    with open(osp.join(work_dir, name), 'w') as f:
        f.write(text + '\n')
    return text
