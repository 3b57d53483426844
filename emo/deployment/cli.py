"""The export command of ``tools/deployment/export.py`` and its OpenMMLab-named alias
``tools/deployment/pytorch2onnx.py`` (``--backend onnx`` fixed): one parser, one loop
over the registry (:mod:`emo.deployment.registry`). The tools hold their docs and call
:func:`export_main`."""
import argparse
import sys
from typing import List, Optional

import torch

from ..apis.launch import (DictAction, add_allow_partial_argument, add_shape_argument,
                           load_config)
from .registry import MAX_BATCH, BACKENDS, RuntimeUnavailable, backend_names, get_backend

__all__ = ['export_parser', 'export_main', 'verify']


def export_parser(description: str, epilog: str, backend: Optional[str] = None):
    """The export tools' parser; ``backend`` fixes ``--backend`` (the alias tool)."""
    parser = argparse.ArgumentParser(
        description=description, formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=epilog)
    parser.add_argument('config', help='config file path')
    parser.add_argument('checkpoint', nargs='?',
                        help='checkpoint file; omitted: random weights (testing only)')
    if backend is None:
        parser.add_argument(
            '--backend', required=True, choices=backend_names(aliases=True),
            help='the runtime to export for: ' + '; '.join(
                f'{b.name}{" (" + ", ".join(b.aliases) + ")" if b.aliases else ""}: '
                f'{b.summary}' for b in BACKENDS.values()))
    else:
        parser.set_defaults(backend=backend)
    exts = ', '.join(b.extension for b in BACKENDS.values())
    parser.add_argument('--out', required=True, help=f'the file to write ({exts})'
                        if backend is None else
                        f'the {get_backend(backend).extension} file to write')
    add_shape_argument(parser, 'input H W (or one number for a square) to export at; '
                       'default: the size the config\'s test pipeline makes (its centre '
                       'crop, fixed resize scale), else its test size (a segmentor\'s '
                       'crop size, a keep-ratio resize\'s scale), else 224')
    parser.add_argument('--max-batch', type=int, default=MAX_BATCH,
                        help=f'largest batch the file takes (default {MAX_BATCH}; '
                        'ExecuTorch plans its memory for it; Core ML takes batch 1)')
    parser.add_argument('--batch-size', type=int, default=1,
                        help='onnx: batch of the traced input (the batch axis stays '
                        'dynamic); --verify also checks batch + 1')
    parser.add_argument('--opset', type=int,
                        help='onnx: ONNX opset version (default: 18 with the '
                        'torch.export-based exporter, 17 with --legacy-exporter)')
    parser.add_argument('--legacy-exporter', action='store_true',
                        help='onnx: use the TorchScript exporter (torch.onnx.export(..., '
                        'dynamo=False)); the default is the torch.export-based one, '
                        'except with dynamic H and W, which only the TorchScript '
                        'exporter keeps for EMO (docs/deployment.md)')
    parser.add_argument('--dynamic-hw', action=argparse.BooleanOptionalAction, default=None,
                        help='onnx: dynamic input height and width (default: yes for '
                        'segmentation and detection, no for classification); the other '
                        'runtimes fix H and W')
    parser.add_argument('--no-reparam', action='store_true',
                        help='export the training form: do not re-parameterize (by '
                        'default every module with switch_to_deploy() is switched: '
                        'emo.apis.reparameterize_model)')
    parser.add_argument('--from-onnx', metavar='FILE',
                        help='openvino: convert this ONNX file (e.g. one with dynamic H '
                        'and W from --backend onnx) instead of exporting the model')
    parser.add_argument('--verify', action='store_true',
                        help='run the exported file in its runtime and the PyTorch model '
                        '(before re-parameterization) on random inputs (the export size '
                        'at --batch-size and one more; another H, W when dynamic); print '
                        'the max abs difference, fail above the derived float32 bound '
                        '(emo/utils/numerics.py)')
    add_allow_partial_argument(parser)
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config settings, key=value pairs')
    return parser


def _check_args(parser, args):
    b = get_backend(args.backend)
    args.backend = b.name
    if not args.out.endswith(b.extension):
        parser.error(f'--out of --backend {b.name} must end with {b.extension}')
    if args.from_onnx and 'source' not in b.options:
        parser.error(f'--from-onnx: --backend {b.name} does not convert ONNX files')
    if args.max_batch < 1:
        parser.error('--max-batch must be >= 1')
    if args.batch_size < 1:
        parser.error('--batch-size must be >= 1')
    if args.dynamic_hw and not b.dynamic_hw:
        parser.error(f'--dynamic-hw: --backend {b.name} fixes H and W')
    return b


def verify(reference, runtime, shapes: List[tuple]):
    """The exported file's runtime against the PyTorch model for each (B, H, W): every
    output within the derived float32 bound (``emo.deployment.verify_outputs``); raises
    naming the file and the inputs where one is not."""
    from .wrappers import verify_outputs
    torch.manual_seed(0)
    bad = []
    for b, h, w in shapes:
        x = torch.randn(b, 3, h, w)
        diff, bound, n = verify_outputs(reference, runtime(x), x)
        print(f'verify {b}x3x{h}x{w}: max abs diff {diff:.3g}, derived float32 bound '
              f'{bound:.3g} (n={n})')
        if diff > bound:
            bad.append(f'{b}x3x{h}x{w}: {diff:.3g} > {bound:.3g}')
    if bad:
        raise RuntimeError(f'{runtime.path}: {runtime.backend} differs from PyTorch beyond '
                           f'the float32 rounding bound: {"; ".join(bad)}')


def export_main(parser, argv=None) -> str:
    """Parse ``argv`` with ``parser`` (:func:`export_parser`), prepare the model
    (:func:`~emo.deployment.prepare.prepare_model`), export it through the registry,
    verify with ``--verify``; returns the file written."""
    args = parser.parse_args(argv)
    backend = _check_args(parser, args)
    from .prepare import export_metadata, export_size, prepare_model
    from .registry import ExportSpec
    from .wrappers import export_wrapper
    cfg = load_config(args.config, args.cfg_options)
    prep = prepare_model(cfg, args.checkpoint, reparam=not args.no_reparam,
                         reference=args.verify, allow_partial=args.allow_partial)
    if prep.task not in backend.tasks:
        raise ValueError(f'{args.config}: {backend.name} export is for '
                         f'{", ".join(backend.tasks)} models, this config builds a '
                         f'{prep.task} model')
    shape = export_size(cfg, args.shape)
    dynamic_hw = backend.dynamic_hw and (prep.task != 'classification'
                                         if args.dynamic_hw is None else args.dynamic_hw)
    wrapper = export_wrapper(prep.model)
    metadata = export_metadata(wrapper, args.config, shape, prep.meta.get('classes'),
                               prep.reparameterized, dynamic_hw)
    given = dict(batch_size=args.batch_size, opset=args.opset, source=args.from_onnx,
                 dynamo=False if args.legacy_exporter else None)
    options = {k: v for k, v in given.items() if k in backend.options}
    spec = ExportSpec(shape, max_batch=args.max_batch, dynamic_hw=dynamic_hw,
                      metadata=metadata, options=options)
    backend.export(wrapper, args.out, spec)
    source = f'from {args.from_onnx}' if args.from_onnx else (
        f'at {shape[0]}x{shape[1]}, {"dynamic" if dynamic_hw else "fixed"} H, W')
    print(f'{prep.task} model exported for {backend.name} to {args.out} ({source})')
    if args.verify:
        try:
            runtime = backend.load(args.out)
            b = args.batch_size
            other = (max(33, shape[0] // 2 + 1), max(33, shape[1] // 2 + 3)) \
                if dynamic_hw else shape
            shapes = [(b, *shape)] + ([(b + 1, *other)] if runtime.max_batch is None or
                                      b + 1 <= runtime.max_batch else [])
            verify(prep.reference, runtime, shapes)
        except RuntimeUnavailable as e:
            print(f'verify: {e}; not run', file=sys.stderr)
    return args.out
