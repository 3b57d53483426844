"""Post-training static INT8 quantization of an EMO classifier, detector or segmentor.

The model (re-parameterized deploy form) is exported for the named runtime, calibrated on
``--calib-num`` images of ``--calib-data`` taken through the config's own test pipeline
and data_preprocessor, and quantized with the runtime's own tool:
  onnxruntime  QDQ ONNX (onnxruntime.quantization.quantize_static), per-channel weights;
  openvino     NNCF (nncf.quantize) on the OpenVINO model;
  executorch   torchao PT2E with ExecuTorch's XNNPACKQuantizer (per-channel weights),
               lowered to XNNPACK (.pte, fixed H, W; ops kept in float or outside
               XNNPACK are listed in <file>.pte.json).
(The backends and their quantizers come from the registry, emo.deployment.registry.)
The export size: --shape, else the size the config's test pipeline makes every image
(a centre crop, a fixed resize), else the calibration images' size when they share one,
else the config's test size; a file that cannot take a test image's size says so by
name. Every CHECKPOINT tensor must fill the model unless --allow-partial.
Written to --out-dir: <name>_fp32.<ext> (the float form, for comparison) and
<name>_int8.<ext>. The op types left in float are printed. With --eval the fp32 and INT8
models both run the config's test set with its test_evaluator (Accuracy, CocoMetric,
IoUMetric) and the metrics are printed side by side, with the top-1 agreement of INT8 with
fp32 for a classifier; both run through DeployInferencer (test batches of at most
--max-batch where the file bounds its batch). See docs/quantization.md for measured
fidelity and speed. Examples:
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

from emo.apis.launch import (DictAction, add_allow_partial_argument,  # noqa: E402
                             add_shape_argument, load_config)
from emo.deployment.registry import MAX_BATCH, backend_names, get_backend  # noqa: E402


def get_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Post-training static INT8 quantization of an EMO model, with fp32 vs '
        'INT8 evaluation', formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__)
    parser.add_argument('config', help='config file path')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument('--backend', default='onnxruntime',
                        choices=[n for n in backend_names(aliases=True)
                                 if get_backend(n).quantizer],
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
    add_shape_argument(parser, 'input H W (or one size) to export at (default: the size '
                       'the test pipeline makes, else the calibration images\' size when '
                       'they share one, else the config\'s test size)')
    parser.add_argument('--max-batch', type=int, default=MAX_BATCH,
                        help=f'largest batch of the written files (default {MAX_BATCH}; '
                        'ExecuTorch plans its memory for it)')
    add_allow_partial_argument(parser)
    parser.add_argument('--eval', action='store_true',
                        help='evaluate fp32 and INT8 on the config\'s test set')
    parser.add_argument('--threads', type=int, help='runtime threads for --eval '
                        '(ExecuTorch: the process-wide XNNPACK threadpool)')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config settings, key=value pairs')
    args = parser.parse_args(argv)
    if args.calib_num < 1:
        parser.error('--calib-num must be >= 1')
    if args.max_batch < 1:
        parser.error('--max-batch must be >= 1')
    args.backend = get_backend(args.backend).name
    return args


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
    from emo.deployment import DeployInferencer, ExportSpec, export_wrapper
    from emo.deployment.prepare import export_metadata, export_size, prepare_model
    from emo.deployment.quantize import calibration_images, calibration_inputs

    backend = get_backend(args.backend)
    cfg = load_config(args.config, args.cfg_options)
    prep = prepare_model(cfg, args.checkpoint, allow_partial=args.allow_partial, log=None)
    if prep.task not in backend.tasks:
        raise ValueError(f'{args.config}: {backend.name} takes {", ".join(backend.tasks)} '
                         f'models, this config builds a {prep.task} model')
    images = calibration_images(cfg, args.calib_data, args.calib_num)
    inputs = calibration_inputs(cfg, images, prep.model)
    print(f'calibrating on {len(inputs)} images of {args.calib_data} '
          f'(first: {images[0]})')
    os.makedirs(args.out_dir, exist_ok=True)
    stem = osp.join(args.out_dir, osp.splitext(osp.basename(args.config))[0])
    shape = export_size(cfg, args.shape, inputs)
    dynamic_hw = backend.dynamic_hw and prep.task != 'classification'
    metadata = export_metadata(export_wrapper(prep.model), cfg, shape,
                               prep.meta.get('classes'), prep.reparameterized, dynamic_hw)
    spec = ExportSpec(shape, max_batch=args.max_batch, dynamic_hw=dynamic_hw,
                      metadata=metadata)
    t0 = time.perf_counter()
    fp32, int8, float_ops = backend.quantize(prep.model, stem, inputs, spec, vars(args))
    print(f'{backend.name}: fp32 {fp32}, INT8 {int8} at {shape[0]}x{shape[1]} '
          f'({time.perf_counter() - t0:.1f} s)')
    print('kept in float: ' + (', '.join(f'{k} x{v}' for k, v in float_ops.items())
                               or 'nothing'))
    if args.eval:
        from emo.deployment.quantize import compare_on_test_set
        inferencers = {name: DeployInferencer(path, cfg, threads=args.threads,
                                              backend=backend.name)
                       for name, path in (('fp32', fp32), ('int8', int8))}
        bounded = [i.runtime.max_batch for i in inferencers.values() if i.runtime.max_batch]
        if bounded:
            cfg.test_dataloader.batch_size = min(cfg.test_dataloader.batch_size, *bounded)
        results = compare_on_test_set(cfg, inferencers)
        print_side_by_side(results)
        with open(f'{stem}_int8_eval.json', 'w') as f:
            json.dump(dict(backend=backend.name, checkpoint=args.checkpoint,
                           calib_data=args.calib_data, calib_num=len(inputs),
                           shape=list(shape), results=results), f, indent=1)
        return results
    return int8


if __name__ == '__main__':
    main()
