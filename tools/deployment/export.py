"""Export an EMO model of this project for any registered runtime: ONNX (ONNX Runtime),
ExecuTorch (XNNPACK), OpenVINO or Core ML.

The model is re-parameterized (every module with ``switch_to_deploy()``, unless
``--no-reparam``) and the task wrapper of ``emo.deployment`` exported at H, W =
``--shape`` (default: the size the config's test pipeline makes), the batch dynamic up
to ``--max-batch``; the backends and their options come from the registry
(``emo.deployment.registry``, docs/deployment.md):

* ``onnx`` (``onnxruntime``): what ``tools/deployment/pytorch2onnx.py`` (an alias of
  ``--backend onnx``) writes: ``.onnx``, H and W dynamic for segmentation and detection
  (``--dynamic-hw`` / ``--no-dynamic-hw``), ``--batch-size``, ``--opset``,
  ``--legacy-exporter``;
* ``executorch``: a ``.pte`` for the XNNPACK delegate, metadata in ``<file>.json``;
  classifier, segmentors and detector heads;
* ``openvino``: OpenVINO IR ``.xml`` + ``.bin`` in float32; ``--from-onnx FILE``
  converts an ONNX file instead (keeping its dynamic H and W);
* ``coreml``: a classifier as an ``.mlpackage`` (ML program) taking the 0-255 image,
  the config's normalisation inside, class labels from the checkpoint or data set
  (conversion only: running it needs macOS).

``--verify`` runs the exported file in its runtime on random inputs at the export size
(batch ``--batch-size`` and one more; another H, W when dynamic), and fails when it
differs from the PyTorch model (before re-parameterization) by more than the derived
float32 rounding bound
(``emo/utils/numerics.py``: 10 eps32 sqrt(n) max|output|, n the accumulation length of
the model's run; Core ML: not run off macOS). Without CHECKPOINT the weights are random
(for testing the export); a CHECKPOINT must fill the whole model unless
``--allow-partial``. Examples:
    python tools/deployment/export.py configs/classification/emo-1m_8xb256_in1k.py \\
        emo_1m_in1k.pth --backend onnx --out emo-1m.onnx --verify
    python tools/deployment/export.py configs/classification/emo-1m_8xb256_in1k.py \\
        emo_1m_in1k.pth --backend executorch --out emo-1m.pte --verify
    python tools/deployment/export.py configs/classification/emo-1m_8xb256_in1k.py \\
        emo_1m_in1k.pth --backend openvino --out emo-1m.xml
    python tools/deployment/export.py configs/classification/emo-1m_8xb256_in1k.py \\
        emo_1m_in1k.pth --backend coreml --out emo-1m.mlpackage
"""
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))

from emo.deployment.cli import export_main, export_parser  # noqa: E402


def get_parser():
    return export_parser('Export an EMO model (mmpretrain / mmdet / mmseg config) to ONNX, '
                         'ExecuTorch, OpenVINO or Core ML', __doc__)


def main(argv=None):
    return export_main(get_parser(), argv)


if __name__ == '__main__':
    main()
