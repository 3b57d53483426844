"""Run an exported EMO model on an image: ONNX Runtime (``.onnx``), ExecuTorch with
XNNPACK (``.pte``) or OpenVINO (``.xml``, or an ``.onnx`` with ``--backend openvino``),
on the CPU. (This tool was ``onnx_inference.py``.)

The image goes through the config's test pipeline and data_preprocessor (resize, crop,
normalisation, padding), the exported graph runs in its runtime, and the outputs are
post-processed as the PyTorch model does it (``emo.deployment.DeployInferencer``):
classification prints the top-k classes (``--out``: a JSON file of them); detection runs
the head's ``predict_by_feat`` (box decoding, score threshold, NMS, rescale to the image),
prints the boxes and with ``--out`` draws them (mmdet's ``DetLocalVisualizer``);
segmentation resizes the logits to the image, takes the argmax and with ``--out`` writes
the label mask as a PNG (one class index per pixel). Examples:
    python tools/deployment/inference.py emo-1m.pte \\
        configs/classification/emo-1m_8xb256_in1k.py demo.jpg --topk 5
    python tools/deployment/inference.py ssdlite_emo-1m.onnx \\
        configs/detection/ssdlite_emo-1m_8xb24-600e_coco.py demo.jpg --out demo_boxes.jpg
    python tools/deployment/inference.py deeplabv3_emo-1m.onnx \\
        configs/segmentation/deeplabv3_emo-1m_8xb4-80k_ade20k-512x512.py demo.jpg \\
        --out demo_mask.png
"""
import argparse
import json
import os
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))

import numpy as np  # noqa: E402

from emo.apis.launch import DictAction, load_config  # noqa: E402
from emo.deployment.registry import BACKENDS, backend_names  # noqa: E402


def get_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Run an exported model (ONNX Runtime, ExecuTorch, OpenVINO) on an image '
        'with the config\'s pre- and post-processing',
        formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    parser.add_argument('model', help='the exported file (tools/deployment/export.py): '
                        + ', '.join(f'{b.extension} ({b.name})' for b in BACKENDS.values()))
    parser.add_argument('config', help='the config the model was exported from')
    parser.add_argument('img', help='image file')
    parser.add_argument('--out', help='classification: a .json of the top-k classes; '
                        'detection: the image with the boxes drawn; segmentation: the '
                        'label mask (.png)')
    parser.add_argument('--topk', type=int, default=5, help='classes to print')
    parser.add_argument('--pred-score-thr', type=float, default=0.3,
                        help='detection: boxes with a lower score are not printed/drawn')
    parser.add_argument('--threads', type=int, help='the runtime\'s threads')
    parser.add_argument('--backend', choices=backend_names(aliases=True),
                        help='the runtime (default: by the file extension; openvino also '
                        'runs .onnx files)')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config settings, key=value pairs')
    return parser.parse_args(argv)


def _class_name(classes, label):
    return classes[label] if classes and label < len(classes) else str(label)


def classification(result, classes, args):
    scores = result.pred_score
    k = min(args.topk, len(scores))
    top = scores.topk(k)
    rows = [dict(label=int(i), class_name=_class_name(classes, int(i)), score=float(s))
            for s, i in zip(top.values, top.indices)]
    for rank, r in enumerate(rows, 1):
        print(f'{rank}. {r["class_name"]} (label {r["label"]}): {r["score"]:.4f}')
    if args.out:
        with open(args.out, 'w') as f:
            json.dump(dict(topk=rows), f, indent=2)
    return rows


def detection(result, classes, args, meta):
    inst = result.pred_instances
    keep = inst.scores >= args.pred_score_thr
    rows = [dict(label=int(lbl), class_name=_class_name(classes, int(lbl)),
                 score=float(s), bbox=[round(float(v), 2) for v in box])
            for lbl, s, box in zip(inst.labels[keep], inst.scores[keep], inst.bboxes[keep])]
    print(f'{len(rows)} boxes with score >= {args.pred_score_thr} '
          f'({len(inst.scores)} after NMS)')
    for r in rows:
        print(f'{r["class_name"]} {r["score"]:.3f} {r["bbox"]}')
    if args.out:
        import mmcv
        from mmdet.visualization import DetLocalVisualizer
        vis = DetLocalVisualizer(name='deploy_inference')
        vis.dataset_meta = meta
        img = mmcv.imread(args.img, channel_order='rgb')
        vis.add_datasample('image', img, result, draw_gt=False,
                           pred_score_thr=args.pred_score_thr, out_file=args.out)
    return rows


def segmentation(result, classes, args):
    mask = result.pred_sem_seg.data[0].numpy()
    labels, counts = np.unique(mask, return_counts=True)
    order = np.argsort(-counts)[:args.topk]
    print(f'mask {mask.shape[0]}x{mask.shape[1]}; most frequent classes:')
    for i in order:
        print(f'  {_class_name(classes, int(labels[i]))} (label {int(labels[i])}): '
              f'{counts[i] / mask.size:.1%}')
    if args.out:
        import mmcv
        dtype = np.uint8 if mask.max(initial=0) < 256 else np.uint16
        mmcv.imwrite(mask.astype(dtype), args.out)
    return mask


def main(argv=None):
    args = get_args(argv)
    for path, what in ((args.model, 'exported model'), (args.img, 'image')):
        if not osp.exists(path):
            raise FileNotFoundError(f'{what} not found: {path}')
    import emo  # noqa: F401
    from emo.deployment import DeployInferencer
    cfg = load_config(args.config, args.cfg_options)
    inferencer = DeployInferencer(args.model, cfg, threads=args.threads,
                                  backend=args.backend)
    result = inferencer([args.img])[0]
    if args.out:
        os.makedirs(osp.dirname(osp.abspath(args.out)), exist_ok=True)
    classes = inferencer.dataset_meta.get('classes')
    if inferencer.task == 'classification':
        out = classification(result, classes, args)
    elif inferencer.task == 'detection':
        out = detection(result, classes, args, inferencer.dataset_meta)
    else:
        out = segmentation(result, classes, args)
    if args.out:
        print(f'written: {args.out}')
    return out


if __name__ == '__main__':
    main()
