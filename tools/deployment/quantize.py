"""Post-training static INT8 quantization of an EMO classifier, detector or segmentor.

The model (re-parameterized deploy form) is exported for the named runtime, calibrated on
``--calib-num`` images of ``--calib-data`` taken through the config's own test pipeline
and data_preprocessor, and quantized with the runtime's own tool:
  onnxruntime  QDQ ONNX (onnxruntime.quantization.quantize_static), per-channel weights;
  openvino     NNCF (nncf.quantize) on the OpenVINO model;
  executorch   torchao PT2E with ExecuTorch's XNNPACKQuantizer (per-channel weights),
               lowered to XNNPACK (.pte, fixed H, W: --shape, else the calibration
               images' size when they share one, else the config's test size; ops kept
               in float or outside XNNPACK are listed in <file>.pte.json). --eval runs
               the fp32 and INT8 .pte with DeployInferencer, test batches of <= 8.
Written to --out-dir: <name>_fp32.<ext> (the float form, for comparison) and
<name>_int8.<ext>. The op types left in float are printed. With --eval the fp32 and INT8
models both run the config's test set with its test_evaluator (Accuracy, CocoMetric,
IoUMetric) and the metrics are printed side by side, with the top-1 agreement of INT8 with
fp32 for a classifier. See docs/quantization.md for measured fidelity and speed. Examples:
    python tools/deployment/quantize.py configs/demo/emo-1m_demo_cls.py epoch_12.pth \\
        --backend onnxruntime --out-dir int8/ --eval
    python tools/deployment/quantize.py configs/demo/ssdlite_emo-1m_demo_coco.py \\
        epoch_24.pth --backend openvino --calib-data train --calib-num 64 --eval
    python tools/deployment/quantize.py configs/demo/emo-1m_demo_cls.py epoch_12.pth \\
        --backend executorch --calib-data train --eval
"""
import argparse
import json
import os
import os.path as osp
import sys
import time

sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))

import torch  # noqa: E402

from emo.apis.launch import DictAction, load_config  # noqa: E402

BACKENDS = ('onnxruntime', 'openvino', 'executorch')
# ExecuTorch plans memory for a largest batch; --eval runs the test set in batches of it
# (a program exported for batch <= 32 refused a batch of 50 at 64x64: "resize a bounded
# tensor with a maximum capacity of 184320 elements")
ET_MAX_BATCH = 8


def get_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Post-training static INT8 quantization of an EMO model, with fp32 vs '
        'INT8 evaluation', formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__)
    parser.add_argument('config', help='config file path')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument('--backend', choices=BACKENDS, default='onnxruntime',
                        help='runtime to quantize for (default: onnxruntime)')
    parser.add_argument('--out-dir', default='work_dirs/int8',
                        help='where <config name>_fp32 / _int8 models go '
                        '(default: work_dirs/int8)')
    parser.add_argument('--calib-data', default='val',
                        help='calibration images: train, val or test (that data set of '
                        'the config), a folder of images or a text file listing images '
                        '(default: val)')
    parser.add_argument('--calib-num', type=int, default=64,
                        help='calibration images, evenly spread over the set (default 64)')
    parser.add_argument('--calib-method', choices=('minmax', 'entropy', 'percentile'),
                        default='minmax',
                        help='onnxruntime: activation range estimate (default minmax)')
    parser.add_argument('--activation-type', choices=('uint8', 'int8'), default='uint8',
                        help='onnxruntime: activation type (default uint8: U8S8 is the '
                        'fast form of its x86 kernels)')
    parser.add_argument('--weight-type', choices=('uint8', 'int8'), default='int8',
                        help='onnxruntime: weight type (default int8)')
    parser.add_argument('--reduce-range', action='store_true',
                        help='onnxruntime: 7-bit weights: the model then computes the same '
                        'on CPUs without VNNI, whose U8S8 kernels can saturate with 8-bit '
                        'ones (default: 8-bit weights, more precise with VNNI)')
    parser.add_argument('--ort-ops', nargs='+', metavar='OP',
                        help='onnxruntime: op types to quantize (default Conv MatMul Gemm; '
                        '"all": every type onnxruntime quantizes)')
    parser.add_argument('--ov-transformer', action='store_true',
                        help='openvino: NNCF\'s ModelType.TRANSFORMER scheme (default: '
                        'its default scheme; TRANSFORMER measured worse on EMO)')
    parser.add_argument('--ov-ignore', nargs='+', metavar='TYPE',
                        help='openvino: op types NNCF keeps in float (e.g. MatMul)')
    parser.add_argument('--ov-overflow-fix', choices=('enable', 'first_layer', 'disable'),
                        default='enable',
                        help='openvino: 7-bit weights in every layer (enable, default: '
                        'the model computes the same on CPUs without VNNI, whose INT8 '
                        'kernels can saturate), in the first only (first_layer, NNCF\'s '
                        'default) or none (disable)')
    parser.add_argument('--shape', type=int, nargs='+', metavar='N',
                        help='input H W (or one size) to export at (default: the '
                        'config\'s test size)')
    parser.add_argument('--eval', action='store_true',
                        help='evaluate fp32 and INT8 on the config\'s test set')
    parser.add_argument('--threads', type=int, help='runtime threads for --eval '
                        '(ExecuTorch: the process-wide XNNPACK threadpool)')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config settings, key=value pairs')
    args = parser.parse_args(argv)
    if args.calib_num < 1:
        parser.error('--calib-num must be >= 1')
    if args.shape and len(args.shape) > 2:
        parser.error('--shape takes H W or one size')
    return args


def build(cfg, checkpoint):
    """The deploy form (re-parameterized, eval mode) of ``cfg`` with ``checkpoint``;
    returns it and the data set's meta (the checkpoint's over the config's)."""
    from emo.apis import build_model_from_cfg, dataset_meta
    model = build_model_from_cfg(cfg, checkpoint=checkpoint, deploy=True)
    meta = dataset_meta(cfg)
    meta.update(getattr(model, 'dataset_meta', None) or {})
    return model, meta


def export_fp32_onnx(model, cfg, meta, path, shape=None):
    """The deploy form as ONNX (dynamic batch; dynamic H, W for det/seg)."""
    from emo.apis import default_shape, task_of
    from emo.deployment import export_onnx, export_wrapper
    task = task_of(model)
    shape = tuple(shape * 2 if shape and len(shape) == 1 else shape or default_shape(cfg))
    dynamic_hw = task != 'classification'
    wrapper = export_wrapper(model)
    metadata = dict(task=task, config=osp.basename(cfg.filename),
                    shape=json.dumps(list(shape)), dynamic_hw=json.dumps(dynamic_hw),
                    reparameterized='true')
    if meta.get('classes'):
        metadata['classes'] = json.dumps(list(meta['classes']))
    return export_onnx(wrapper, path, torch.randn(1, 3, *shape),
                       output_names=wrapper.output_names(),
                       dynamic_axes=wrapper.dynamic_axes(dynamic_hw=dynamic_hw),
                       metadata=metadata)


def quantize_ort(args, cfg, model, meta, inputs, stem):
    from emo.deployment.quantize import float_ops_onnx, quantize_onnxruntime
    fp32 = export_fp32_onnx(model, cfg, meta, f'{stem}_fp32.onnx', args.shape)
    ops = args.ort_ops
    ops = None if ops == ['all'] else (ops or ('Conv', 'MatMul', 'Gemm'))
    int8 = quantize_onnxruntime(
        fp32, f'{stem}_int8.onnx', inputs, calibrate_method=args.calib_method,
        activation_type=args.activation_type, weight_type=args.weight_type,
        reduce_range=args.reduce_range, op_types=ops)
    return fp32, int8, float_ops_onnx(int8)


def quantize_ov(args, cfg, model, meta, inputs, stem):
    import openvino as ov

    from emo.deployment.quantize import (float_ops_openvino, openvino_model,
                                         quantize_openvino)
    onnx_path = export_fp32_onnx(model, cfg, meta, f'{stem}_fp32.onnx', args.shape)
    fp32 = f'{stem}_fp32.xml'
    ov.save_model(ov.convert_model(onnx_path), fp32, compress_to_fp16=False)
    int8 = quantize_openvino(fp32, f'{stem}_int8.xml', inputs,
                             transformer=args.ov_transformer,
                             ignored_types=args.ov_ignore or (),
                             overflow_fix=args.ov_overflow_fix)
    compiled = openvino_model(int8)
    return fp32, int8, float_ops_openvino(compiled)


def quantize_et(args, cfg, model, meta, inputs, stem):
    import copy

    from emo.apis import default_shape, task_of
    from emo.deployment import export_wrapper
    from emo.deployment.executorch import export_executorch
    from emo.deployment.quantize import float_ops_executorch, quantize_executorch
    # fixed H, W: the size the test pipeline makes (that of the calibration inputs when
    # they share one, e.g. a segmentor's keep-ratio resize), else the config's
    sizes = {tuple(x.shape[2:]) for x in inputs}
    shape = tuple(args.shape * 2 if args.shape and len(args.shape) == 1 else
                  args.shape or (sizes.pop() if len(sizes) == 1 else default_shape(cfg)))
    wrapper = export_wrapper(model)
    metadata = dict(task=task_of(model), config=osp.basename(cfg.filename),
                    output_names=json.dumps(wrapper.output_names()),
                    reparameterized='true')
    if meta.get('classes'):
        metadata['classes'] = json.dumps(list(meta['classes']))
    max_batch = ET_MAX_BATCH
    fp32 = export_executorch(copy.deepcopy(wrapper), f'{stem}_fp32.pte', shape,
                             max_batch=max_batch, metadata=metadata)
    int8 = quantize_executorch(wrapper, f'{stem}_int8.pte', inputs, shape,
                               metadata=metadata, max_batch=max_batch)
    return fp32, int8, float_ops_executorch(int8)


def inferencer(backend, path, cfg, threads, onnx_path):
    """The config's pre/post-processing around the runtime model ``path``
    (``DeployInferencer``; for OpenVINO, the fp32 ONNX export's inferencer)."""
    from emo.deployment import DeployInferencer, ONNXInferencer
    if backend == 'onnxruntime':
        return ONNXInferencer(path, cfg, threads=threads)
    if backend == 'executorch':
        return DeployInferencer(path, cfg, threads=threads)
    inf = ONNXInferencer(onnx_path, cfg, threads=threads)
    if backend == 'openvino':
        from emo.deployment.quantize import openvino_model
        compiled = openvino_model(path, threads)

        def forward(inputs):
            res = compiled(inputs.numpy())
            return [torch.from_numpy(res[o]) for o in compiled.outputs]
        inf.forward = forward
        return inf
    raise NotImplementedError(backend)


def print_side_by_side(results):
    names = list(results)
    keys = [k for k in results[names[0]]] + [
        k for k in results[names[-1]] if k not in results[names[0]]]
    width = max(len(k) for k in keys) + 2
    print(f'{"metric":{width}s}' + ''.join(f'{n:>12s}' for n in names) + f'{"INT8-fp32":>12s}')
    for k in keys:
        vals = [results[n].get(k) for n in names]
        row = ''.join(f'{v:12.4f}' if isinstance(v, (int, float)) else f'{"-":>12s}'
                      for v in vals)
        diff = (f'{vals[-1] - vals[0]:12.4f}' if all(isinstance(v, (int, float))
                                                     for v in vals) else f'{"":12s}')
        print(f'{k:{width}s}{row}{diff}')


def main(argv=None):
    args = get_args(argv)
    import emo  # noqa: F401
    from emo.deployment.quantize import calibration_images, calibration_inputs

    cfg = load_config(args.config, args.cfg_options)
    model, meta = build(cfg, args.checkpoint)
    images = calibration_images(cfg, args.calib_data, args.calib_num)
    inputs = calibration_inputs(cfg, images, model)
    print(f'calibrating on {len(inputs)} images of {args.calib_data} '
          f'(first: {images[0]})')
    os.makedirs(args.out_dir, exist_ok=True)
    stem = osp.join(args.out_dir, osp.splitext(osp.basename(args.config))[0])
    t0 = time.perf_counter()
    if args.backend == 'onnxruntime':
        fp32, int8, float_ops = quantize_ort(args, cfg, model, meta, inputs, stem)
    elif args.backend == 'openvino':
        fp32, int8, float_ops = quantize_ov(args, cfg, model, meta, inputs, stem)
    elif args.backend == 'executorch':
        fp32, int8, float_ops = quantize_et(args, cfg, model, meta, inputs, stem)
    else:
        raise ValueError(f'unknown backend {args.backend}')
    print(f'{args.backend}: fp32 {fp32}, INT8 {int8} ({time.perf_counter() - t0:.1f} s)')
    print('kept in float: ' + (', '.join(f'{k} x{v}' for k, v in float_ops.items())
                               or 'nothing'))
    if args.eval:
        from emo.deployment.quantize import compare_on_test_set
        if args.backend == 'executorch':
            cfg.test_dataloader.batch_size = min(cfg.test_dataloader.batch_size,
                                                 ET_MAX_BATCH)
        results = compare_on_test_set(cfg, {
            'fp32': inferencer(args.backend, fp32, cfg, args.threads, f'{stem}_fp32.onnx'),
            'int8': inferencer(args.backend, int8, cfg, args.threads, f'{stem}_fp32.onnx')})
        print_side_by_side(results)
        with open(f'{stem}_int8_eval.json', 'w') as f:
            json.dump(dict(backend=args.backend, checkpoint=args.checkpoint,
                           calib_data=args.calib_data, calib_num=len(inputs),
                           results=results), f, indent=1)
        return results
    return int8


if __name__ == '__main__':
    main()
