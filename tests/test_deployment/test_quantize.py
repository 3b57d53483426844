"""INT8 post-training quantization (emo.deployment.quantize, tools/deployment/quantize.py).

The model is the demo classifier (EMO-1M, 64x64 images, 4 classes) with a random backbone
(``reference_emo.randomize_``, BN statistics of the calibration images) and a head
fitted by (ridge) least squares on the backbone features
of the calibration images (a linear probe), so that its top-1 decisions on those images
have real margins, as a trained model's have. Every backend quantizes it, calibrated on
those images, and its logits are compared with fp32 on them.

The bound: each quantized layer rounds its input activation and its weights to half a step
of their calibrated INT8 scales, i.e. by at most 1/510 of each tensor's range (1/254 for
7-bit weights, which keep the INT8 kernels of CPUs without VNNI from saturating:
OpenVINO's default here, and ONNX Runtime's ``reduce_range``, which the ONNX Runtime
tests use because its kernels cannot be held to AVX2 on this machine). If the network carried
relative errors at unit gain, the errors of the D quantized layers on the longest path
from the input to the logits would add up to at most the sum of those, per layer, of the
logits' range: one step of the logits' own INT8 grid (range / 255) per layer with 8-bit
weights, 1.5 with 7-bit ones (``layer_steps``; the budget is read from the quantized
model's own integer weights). A deep nonlinear network has no such worst-case guarantee
(single logits can exceed it where errors line up), so the tests assert it for the RMS
error, and that the top-1 decision is fp32's wherever fp32's margin exceeds twice the
bound (``decisions_equal_outside_ties``): a broken quantization (a wrong scale, a
collapsed model, int16 saturation on a CPU without VNNI) fails both.

The probe and the quantized files are made once per ``make test`` (seeded,
``helpers.shared_dir``); the lower-capability pass reruns every comparison on them.
"""
import copy
import os.path as osp
import re

import pytest
from helpers import (check_int8_executorch, check_int8_onnxruntime, check_int8_openvino,
                     int8_probe, int8_pte, onnx_depth, run_tool, shared_dir)
from mmengine.config import Config
from reference_emo import randomize_

import emo  # noqa: F401
from emo.deployment import ONNXInferencer, export_onnx, export_wrapper
from emo.deployment.quantize import (calibration_images, compare_on_test_set,
                                     float_ops_onnx, float_ops_openvino, openvino_model,
                                     quantize_executorch, quantize_onnxruntime,
                                     quantize_openvino)

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
CONFIG = osp.join(REPO, 'configs/demo/emo-1m_demo_cls.py')
NUM = 24  # calibration images (6 per class of the demo set)
pytestmark = pytest.mark.usefixtures('single_thread')


def demo_cfg(root):
    cfg = Config.fromfile(CONFIG)
    cfg.merge_from_dict({
        'val_dataloader.dataset.data_root': osp.join(root, 'imagenet'),
        'train_dataloader.dataset.data_root': osp.join(root, 'imagenet')})
    cfg.test_dataloader = cfg.val_dataloader
    return cfg


@pytest.fixture(scope='module')
def probe(demo_data_root, tmp_path_factory):
    """(cfg, deploy-form model, calibration inputs (N, 3, 64, 64), labels, checkpoint);
    made once per ``make test`` (``helpers.int8_probe``), seeded."""
    return int8_probe(tmp_path_factory, 'quantize_probe', demo_cfg(demo_data_root),
                      randomize_, NUM)


@pytest.fixture(scope='module')
def ort_int8(probe, tmp_path_factory):
    """(fp32 .onnx, INT8 .onnx) of the probe, calibrated on its inputs."""
    cfg, model, inputs, _, _ = probe

    def make(out):
        wrapper = export_wrapper(copy.deepcopy(model))
        fp32 = export_onnx(wrapper, osp.join(out, 'fp32.onnx'), inputs[:1],
                           output_names=wrapper.output_names(),
                           dynamic_axes=wrapper.dynamic_axes(),
                           metadata=dict(task='classification'))
        # 7-bit weights: computes the same with and without VNNI (quantize_onnxruntime)
        quantize_onnxruntime(fp32, osp.join(out, 'int8.onnx'), list(inputs.split(1)),
                             reduce_range=True)

    out = shared_dir(tmp_path_factory, 'quantize_ort', make)
    return osp.join(out, 'fp32.onnx'), osp.join(out, 'int8.onnx')


def test_onnxruntime_int8_keeps_decisions(probe, ort_int8):
    # within the bound, and the model is INT8: Conv / MatMul / Gemm run as QLinear kernels
    check_int8_onnxruntime(probe, ort_int8[1])


@pytest.fixture(scope='module')
def ov_int8(probe, ort_int8, tmp_path_factory):
    inputs = probe[2]

    def make(out):
        quantize_openvino(ort_int8[0], osp.join(out, 'int8.xml'), list(inputs.split(1)))

    return osp.join(shared_dir(tmp_path_factory, 'quantize_ov', make), 'int8.xml')


def test_openvino_int8_keeps_decisions(probe, ov_int8):
    # within the bound; most convolutions run in INT8 (NNCF leaves some in float)
    check_int8_openvino(probe, ov_int8)


def test_executorch_int8_keeps_decisions(probe, tmp_path, tmp_path_factory):
    """XNNPACK INT8 .pte (torchao PT2E) of the probe: logits within the bound, the
    convolutions and linears in INT8 (only the listed ops float), and it loads where
    the unfixed program failed (EMO's window padding)."""
    inputs = probe[2]
    path = int8_pte(tmp_path_factory, 'quantize_executorch', probe, (64, 64))
    # a batch-1 program: lowered in about half the time of a dynamic-batch one
    # (test_runtimes.py tests that); only the LayerNorms' two mean convolutions each stay
    # float, no linear; the attention stays float
    wrapper = check_int8_executorch(probe, path, (64, 64))
    with pytest.raises(ValueError, match=r'must be \(1, 3, 64, 64\).*\(1, 3, 32, 32\)'):
        quantize_executorch(wrapper, str(tmp_path / 'x.pte'), [inputs[:1, :, :32, :32]],
                            (64, 64))
    with pytest.raises(ValueError, match='ends with .pte'):
        quantize_executorch(wrapper, str(tmp_path / 'x.onnx'), [inputs[:1]], (64, 64))


def test_openvino_reports_float_ops_and_refuses_unknown(probe, ort_int8, tmp_path):
    """MatMul kept in float (ignored scope) shows in the report; an op type the model
    lacks is refused by name."""
    fp32 = ort_int8[0]
    inputs = list(probe[2][:4].split(1))
    path = quantize_openvino(fp32, str(tmp_path / 'x.xml'), inputs, ignored_types=['MatMul'])
    assert float_ops_openvino(openvino_model(path)).get('FullyConnected', 0) > 0
    with pytest.raises(ValueError, match='has no NonMaxSuppression op'):
        quantize_openvino(fp32, str(tmp_path / 'y.xml'), inputs,
                          ignored_types=['NonMaxSuppression'])


def test_onnxruntime_reports_float_ops(ort_int8):
    """EMO's LayerNorms stay in float by default, and the report says so."""
    fp32, int8 = ort_int8
    assert float_ops_onnx(int8).get('LayerNormalization', 0) > 0
    assert float_ops_onnx(fp32).get('Conv', 0) > 10  # without Q/DQ every op is float


def test_onnxruntime_refuses_unquantizable_op(probe, ort_int8, tmp_path):
    fp32, _ = ort_int8
    inputs = list(probe[2][:2].split(1))
    with pytest.raises(ValueError, match='onnxruntime cannot quantize Erf'):
        quantize_onnxruntime(fp32, str(tmp_path / 'x.onnx'), inputs,
                             op_types=['Conv', 'Erf'])
    with pytest.raises(ValueError, match='has none of the op types'):
        quantize_onnxruntime(fp32, str(tmp_path / 'x.onnx'), inputs, op_types=['Resize'])


def test_calibration_set_empty(demo_data_root, tmp_path):
    cfg = demo_cfg(demo_data_root)
    (tmp_path / 'notes.txt').write_text('no image here')
    with pytest.raises(ValueError, match=f'folder {re.escape(str(tmp_path))} has no images'):
        calibration_images(cfg, str(tmp_path))
    listing = tmp_path / 'list.txt'
    listing.write_text('# nothing listed\n')
    with pytest.raises(ValueError, match=f'list file {re.escape(str(listing))} has no'):
        calibration_images(cfg, str(listing))
    (tmp_path / 'val').mkdir()
    cfg.merge_from_dict({'val_dataloader.dataset.data_root': str(tmp_path)})
    with pytest.raises(ValueError, match=f'val set of .*{re.escape(str(tmp_path))}'):
        calibration_images(cfg, 'val')


def test_calibration_images_spread_over_classes(demo_data_root):
    images = calibration_images(demo_cfg(demo_data_root), 'val', 8)
    assert len(images) == 8
    assert {osp.basename(osp.dirname(p)) for p in images} == {
        'circle', 'cross', 'square', 'triangle'}


def test_compare_on_test_set(probe, ort_int8):
    """fp32 ONNX vs itself: equal metrics, 100% agreement; the accuracy is that of the
    PyTorch model on the same images."""
    cfg, model, _, _, _ = probe
    fp32, _ = ort_int8
    inf = ONNXInferencer(fp32, cfg)
    res = compare_on_test_set(cfg, dict(a=inf, b=inf), num=1)
    assert res['a']['accuracy/top1'] == res['b']['accuracy/top1']
    assert res['b']['agreement/top1'] == 100.0


def test_tool_onnxruntime_eval(probe, tmp_path):
    cfg, _, _, _, ckpt = probe
    root = osp.dirname(cfg.val_dataloader.dataset.data_root)
    proc = run_tool('tools/deployment/quantize.py', CONFIG, ckpt, '--backend',
                    'onnxruntime', '--out-dir', str(tmp_path), '--calib-num', '8', '--eval',
                    '--reduce-range',
                    '--cfg-options', f'val_dataloader.dataset.data_root={root}/imagenet',
                    f'test_dataloader.dataset.data_root={root}/imagenet')
    depth, budget = onnx_depth(str(tmp_path / 'emo-1m_demo_cls_int8.onnx'))
    assert budget > 1.3 * depth  # --reduce-range: 7-bit weights (1.5 steps a layer)
    assert 'kept in float: ' in proc.stdout
    row = re.search(r'accuracy/top1\s+([\d.]+)\s+([\d.]+)', proc.stdout)
    agree = re.search(r'agreement/top1\s+-\s+([\d.]+)', proc.stdout)
    assert row and agree, proc.stdout
    assert 0 <= float(agree.group(1)) <= 100
    bad = run_tool('tools/deployment/quantize.py', CONFIG, ckpt, '--out-dir',
                   str(tmp_path), '--calib-data', str(tmp_path / 'nothing'), check=False)
    assert bad.returncode != 0 and 'nothing' in bad.stderr and 'does not exist' in bad.stderr
