"""Export an EMO classifier, segmentor or detector of this project to ONNX.

The graph takes the normalised image batch ``input`` (B, 3, H, W) and returns:
classification ``logits`` (B, num_classes); segmentation ``seg_logits`` (B, C, H, W),
whole image, resized to the input; detection the raw head outputs ``cls_score_i`` and
``bbox_pred_i`` per level (decoding and NMS stay outside, in
``tools/deployment/inference.py``). The batch is always dynamic; H and W are dynamic
for segmentation and detection (``--no-dynamic-hw`` fixes them; ``--dynamic-hw`` frees
them for a classifier). Graphs with fixed H and W come from the torch.export-based
exporter (opset 18), graphs with dynamic H and W, or any with ``--legacy-exporter``, from
the TorchScript one (opset 17). ``tools/deployment/export.py`` writes the other runtimes'
files (ExecuTorch, OpenVINO, Core ML). The backbone is re-parameterized (``switch_to_deploy``: BatchNorms
folded into the convs) unless ``--no-reparam``. Without CHECKPOINT the weights are random
(for testing the export). Examples:
    python tools/deployment/pytorch2onnx.py configs/classification/emo-1m_8xb256_in1k.py \\
        emo_1m_in1k.pth --out emo-1m.onnx --verify
    python tools/deployment/pytorch2onnx.py \\
        configs/segmentation/deeplabv3_emo-1m_8xb4-80k_ade20k-512x512.py iter_80000.pth \\
        --out deeplabv3_emo-1m.onnx --shape 512 512 --verify
    python tools/deployment/pytorch2onnx.py \\
        configs/detection/ssdlite_emo-1m_8xb24-600e_coco.py epoch_120.pth \\
        --out ssdlite_emo-1m.onnx
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


def get_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Export an EMO model (mmpretrain / mmdet / mmseg config) to ONNX',
        formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    parser.add_argument('config', help='config file path')
    parser.add_argument('checkpoint', nargs='?',
                        help='checkpoint file; omitted: random weights (testing only)')
    parser.add_argument('--out', required=True, help='the .onnx file to write')
    parser.add_argument('--shape', type=int, nargs='+', metavar='N',
                        help='input H W (or one number for a square) to trace at; default: '
                        'the config\'s test crop / resize scale / crop size')
    parser.add_argument('--batch-size', type=int, default=1,
                        help='batch of the traced input (the batch axis stays dynamic)')
    parser.add_argument('--opset', type=int,
                        help='ONNX opset version (default: 18 with the torch.export-based '
                        'exporter, 17 with --legacy-exporter)')
    parser.add_argument('--legacy-exporter', action='store_true',
                        help='use the TorchScript exporter (torch.onnx.export(..., '
                        'dynamo=False)); the default is the torch.export-based one, '
                        'except with dynamic H and W, which only the TorchScript '
                        'exporter keeps for EMO (docs/deployment.md)')
    parser.add_argument('--dynamic-hw', action=argparse.BooleanOptionalAction, default=None,
                        help='dynamic input height and width (default: yes for '
                        'segmentation and detection, no for classification)')
    parser.add_argument('--no-reparam', action='store_true',
                        help='export the training form: do not call '
                        'backbone.switch_to_deploy()')
    parser.add_argument('--verify', action='store_true',
                        help='compare onnxruntime with the PyTorch model (before '
                        're-parameterization) on random inputs (the traced shape, another '
                        'batch size, another H, W when dynamic); print the max abs '
                        'difference, fail above the derived float32 bound '
                        '(emo/utils/numerics.py)')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config settings, key=value pairs')
    args = parser.parse_args(argv)
    if args.shape and len(args.shape) > 2:
        parser.error('--shape takes H W or one size')
    if args.batch_size < 1:
        parser.error('--batch-size must be >= 1')
    return args


def verify(model_ref, path, shapes, batch):
    """onnxruntime against the PyTorch model for each shape: every output within the
    derived float32 bound (``emo.deployment.verify_outputs``); raises naming the file
    and the inputs where one is not."""
    from emo.deployment import ort_session, verify_outputs
    sess = ort_session(path)
    torch.manual_seed(0)
    bad = []
    for b, (h, w) in zip(batch, shapes):
        x = torch.randn(b, 3, h, w)
        diff, bound, n = verify_outputs(model_ref, sess.run(None, {'input': x.numpy()}), x)
        print(f'verify {b}x3x{h}x{w}: max abs diff {diff:.3g}, derived float32 bound '
              f'{bound:.3g} (n={n})')
        if diff > bound:
            bad.append(f'{b}x3x{h}x{w}: {diff:.3g} > {bound:.3g}')
    if bad:
        raise RuntimeError(f'{path}: onnxruntime differs from PyTorch beyond the float32 '
                           f'rounding bound: {"; ".join(bad)}')


def main(argv=None):
    args = get_args(argv)
    import emo  # noqa: F401
    from emo.apis import (build_model_from_cfg, dataset_meta, load_weights,
                          reparameterize_model, task_of)
    from emo.deployment import export_onnx, export_wrapper
    cfg = load_config(args.config, args.cfg_options)
    model = build_model_from_cfg(cfg)
    task = task_of(model)
    meta = dataset_meta(cfg)
    if args.checkpoint:
        meta.update(load_weights(model, args.checkpoint))
    else:
        print('no checkpoint given: exporting randomly initialised weights')
    model.eval()
    # --verify compares with the training form: copied before anything is changed
    reference = copy.deepcopy(model) if args.verify else None
    reparam = False if args.no_reparam else reparameterize_model(model) > 0
    print(f'backbone re-parameterized (switch_to_deploy): {reparam}')

    shape = tuple(args.shape * 2 if args.shape and len(args.shape) == 1 else
                  args.shape or default_shape(cfg))
    dynamic_hw = task != 'classification' if args.dynamic_hw is None else args.dynamic_hw

    wrapper = export_wrapper(model)
    metadata = dict(task=task, config=osp.basename(args.config),
                    shape=json.dumps(list(shape)), dynamic_hw=json.dumps(dynamic_hw),
                    reparameterized=json.dumps(reparam))
    if meta.get('classes'):
        metadata['classes'] = json.dumps(list(meta['classes']))
    axes = wrapper.dynamic_axes(dynamic_hw=dynamic_hw)
    dynamo = not (args.legacy_exporter or dynamic_hw)
    export_onnx(wrapper, args.out, torch.randn(args.batch_size, 3, *shape),
                output_names=wrapper.output_names(), dynamic_axes=axes,
                opset_version=args.opset, metadata=metadata, dynamo=dynamo)
    exporter = 'torch.export-based' if dynamo else 'TorchScript'
    print(f'{task} model exported to {args.out} ({exporter} exporter, opset '
          f'{args.opset or (18 if dynamo else 17)}, traced at '
          f'{args.batch_size}x3x{shape[0]}x{shape[1]})')
    for name, dims in axes.items():
        print(f'  {name}: dynamic axes {dims}')

    if args.verify:
        shapes, batch = [shape], [args.batch_size]
        batch.append(args.batch_size + 1)
        shapes.append((max(33, shape[0] // 2 + 1), max(33, shape[1] // 2 + 3))
                      if dynamic_hw else shape)
        verify(reference, args.out, shapes, batch)
    return args.out


if __name__ == '__main__':
    main()
