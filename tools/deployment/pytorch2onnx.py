"""Export an EMO classifier, segmentor or detector of this project to ONNX: the
OpenMMLab-named alias of ``tools/deployment/export.py --backend onnx`` (the same options,
without ``--backend``).

The graph takes the normalised image batch ``input`` (B, 3, H, W) and returns:
classification ``logits`` (B, num_classes); segmentation ``seg_logits`` (B, C, H, W),
whole image, resized to the input; detection the raw head outputs ``cls_score_i`` and
``bbox_pred_i`` per level (decoding and NMS stay outside, in
``tools/deployment/inference.py``). The batch is always dynamic; H and W are dynamic
for segmentation and detection (``--no-dynamic-hw`` fixes them; ``--dynamic-hw`` frees
them for a classifier). Graphs with fixed H and W come from the torch.export-based
exporter (opset 18), graphs with dynamic H and W, or any with ``--legacy-exporter``, from
the TorchScript one (opset 17). ``tools/deployment/export.py`` writes the other runtimes'
files (ExecuTorch, OpenVINO, Core ML). The model is re-parameterized (every module with
``switch_to_deploy()``: BatchNorms folded into the convs) unless ``--no-reparam``.
Without CHECKPOINT the weights are random (for testing the export); a CHECKPOINT must
fill the whole model unless ``--allow-partial``. Examples:
    python tools/deployment/pytorch2onnx.py configs/classification/emo-1m_8xb256_in1k.py \\
        emo_1m_in1k.pth --out emo-1m.onnx --verify
    python tools/deployment/pytorch2onnx.py \\
        configs/segmentation/deeplabv3_emo-1m_8xb4-80k_ade20k-512x512.py iter_80000.pth \\
        --out deeplabv3_emo-1m.onnx --shape 512 512 --verify
    python tools/deployment/pytorch2onnx.py \\
        configs/detection/ssdlite_emo-1m_8xb24-600e_coco.py epoch_120.pth \\
        --out ssdlite_emo-1m.onnx
"""
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))

from emo.deployment.cli import export_main, export_parser  # noqa: E402


def get_parser():
    return export_parser('Export an EMO model (mmpretrain / mmdet / mmseg config) to ONNX '
                         '(= tools/deployment/export.py --backend onnx)', __doc__,
                         backend='onnxruntime')


def main(argv=None):
    return export_main(get_parser(), argv)


if __name__ == '__main__':
    main()
