"""Export an EMO model of this project to ExecuTorch (XNNPACK), OpenVINO or Core ML.

(ONNX: ``tools/deployment/pytorch2onnx.py``.) The backbone is re-parameterized
(``switch_to_deploy``) and the task wrapper of ``emo.deployment`` exported through
``torch.export`` at H, W = ``--shape`` (default: the config's test size), the batch
dynamic up to ``--max-batch``:

* ``executorch``: a ``.pte`` for the XNNPACK delegate, metadata in ``<file>.json``;
  classifier, segmentors and detector heads;
* ``openvino``: OpenVINO IR ``.xml`` + ``.bin`` in float32; ``--from-onnx FILE``
  converts an ONNX file instead (keeping its dynamic H and W);
* ``coreml``: a classifier as an ``.mlpackage`` (ML program) taking the 0-255 image,
  the config's normalisation inside, class labels from the checkpoint or data set
  (conversion only: running it needs macOS).

``--verify`` runs the exported file (ExecuTorch, OpenVINO) on random inputs at the
export size, batch 1 and 2, and fails when it differs from the PyTorch model (before
re-parameterization) by more than the derived float32 rounding bound
(``emo/utils/numerics.py``: 10 eps32 sqrt(n) max|output|, n the accumulation length of
the model's run). Without CHECKPOINT
the weights are random (for testing the export). Examples:
    python tools/deployment/export.py configs/classification/emo-1m_8xb256_in1k.py \\
        emo_1m_in1k.pth --backend executorch --out emo-1m.pte --verify
    python tools/deployment/export.py configs/classification/emo-1m_8xb256_in1k.py \\
        emo_1m_in1k.pth --backend openvino --out emo-1m.xml
    python tools/deployment/export.py configs/classification/emo-1m_8xb256_in1k.py \\
        emo_1m_in1k.pth --backend coreml --out emo-1m.mlpackage
"""
import argparse
import copy
import json
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))

import torch  # noqa: E402

from emo.apis import default_shape  # noqa: E402
from emo.apis.launch import DictAction, load_config  # noqa: E402

EXTENSIONS = dict(executorch='.pte', openvino='.xml', coreml='.mlpackage')


def get_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Export an EMO model (mmpretrain / mmdet / mmseg config) to '
        'ExecuTorch, OpenVINO or Core ML', formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__)
    parser.add_argument('config', help='config file path')
    parser.add_argument('checkpoint', nargs='?',
                        help='checkpoint file; omitted: random weights (testing only)')
    parser.add_argument('--backend', required=True, choices=sorted(EXTENSIONS),
                        help='the runtime to export for')
    parser.add_argument('--out', required=True,
                        help='the file to write (.pte, .xml or .mlpackage)')
    parser.add_argument('--shape', type=int, nargs='+', metavar='N',
                        help='input H W (or one number for a square); default: the '
                        'config\'s test crop / resize scale / crop size')
    parser.add_argument('--max-batch', type=int, default=32,
                        help='largest batch the file takes (ExecuTorch plans its memory '
                        'for it; Core ML takes batch 1)')
    parser.add_argument('--from-onnx', metavar='FILE',
                        help='openvino: convert this ONNX file (e.g. one with dynamic H '
                        'and W from pytorch2onnx.py) instead of exporting the model')
    parser.add_argument('--verify', action='store_true',
                        help='compare the exported file (executorch, openvino) with the '
                        'PyTorch model on random inputs; fail above the derived float32 '
                        'bound (emo/utils/numerics.py)')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config settings, key=value pairs')
    args = parser.parse_args(argv)
    if args.shape and len(args.shape) > 2:
        parser.error('--shape takes H W or one size')
    if not args.out.endswith(EXTENSIONS[args.backend]):
        parser.error(f'--out of --backend {args.backend} must end with '
                     f'{EXTENSIONS[args.backend]}')
    if args.from_onnx and args.backend != 'openvino':
        parser.error('--from-onnx is for --backend openvino')
    if args.max_batch < 1:
        parser.error('--max-batch must be >= 1')
    return args


def verify(reference, path, shape, backend):
    """The exported file against the PyTorch model at batch 1 and 2: every output within
    the derived float32 bound (``emo.deployment.verify_outputs``); raises naming the file
    where one is not."""
    from emo.deployment import load_runtime, verify_outputs
    runtime = load_runtime(path, threads=None, backend=backend)
    torch.manual_seed(0)
    for b in (1, 2):
        x = torch.randn(b, 3, *shape)
        diff, bound, n = verify_outputs(reference, runtime(x), x)
        print(f'verify {b}x3x{shape[0]}x{shape[1]}: max abs diff {diff:.3g}, derived '
              f'float32 bound {bound:.3g} (n={n})')
        if diff > bound:
            raise RuntimeError(f'{path}: {backend} differs from PyTorch by {diff:.3g}, '
                               f'beyond the float32 rounding bound {bound:.3g}')


def main(argv=None):
    args = get_args(argv)
    import emo  # noqa: F401
    from emo.apis import (build_model_from_cfg, dataset_meta, load_weights,
                          reparameterize_model, task_of)
    from emo.deployment import export_wrapper
    cfg = load_config(args.config, args.cfg_options)
    model = build_model_from_cfg(cfg)
    task = task_of(model)
    meta = dataset_meta(cfg)
    if args.checkpoint:
        meta.update(load_weights(model, args.checkpoint))
    else:
        print('no checkpoint given: exporting randomly initialised weights')
    model.eval()
    reference = copy.deepcopy(model) if args.verify else None
    reparam = reparameterize_model(model) > 0
    print(f'backbone re-parameterized (switch_to_deploy): {reparam}')
    shape = tuple(args.shape * 2 if args.shape and len(args.shape) == 1 else
                  args.shape or default_shape(cfg))
    wrapper = export_wrapper(model)
    metadata = dict(task=task, config=osp.basename(args.config),
                    output_names=json.dumps(wrapper.output_names()),
                    reparameterized=json.dumps(reparam))
    if meta.get('classes'):
        metadata['classes'] = json.dumps(list(meta['classes']))

    if args.backend == 'executorch':
        from emo.deployment.executorch import export_executorch
        export_executorch(wrapper, args.out, shape, max_batch=args.max_batch,
                          metadata=metadata)
    elif args.backend == 'openvino':
        from emo.deployment.openvino import export_openvino
        export_openvino(args.from_onnx or wrapper, args.out, shape, metadata=metadata)
    else:
        if task != 'classification':
            raise ValueError(f'{args.config}: Core ML export is for classifiers, this '
                             f'config builds a {task} model')
        from emo.deployment.coreml import export_coreml
        export_coreml(model, args.out, shape, classes=meta.get('classes'),
                      metadata=metadata)
    source = f'from {args.from_onnx}' if args.from_onnx else \
        f'at {shape[0]}x{shape[1]}, batch 1..{args.max_batch}'
    print(f'{task} model exported for {args.backend} to {args.out} ({source})')
    if args.verify:
        if args.backend == 'coreml':
            print('verify: Core ML prediction needs macOS; not run')
        else:
            verify(reference, args.out, shape, args.backend)
    return args.out


if __name__ == '__main__':
    main()
