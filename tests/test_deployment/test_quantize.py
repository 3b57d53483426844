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
import collections
import copy
import json
import os.path as osp
import re

import onnx
import pytest
import torch
from helpers import decisions_equal_outside_ties, run_tool, shared_dir
from mmengine.config import Config
from reference_emo import randomize_
from torch.nn.modules.batchnorm import _BatchNorm

import emo  # noqa: F401
from emo.apis import build_model_from_cfg
from emo.deployment import ONNXInferencer, export_onnx, export_wrapper
from emo.deployment.executorch import ChannelLayerNorm, ExecuTorchModel, xnnpack_friendly
from emo.deployment.program import export_program
from emo.deployment.quantize import (calibration_images, calibration_inputs,
                                     compare_on_test_set, float_ops_executorch,
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
    made once per ``make test`` (``helpers.shared_dir``), seeded."""
    cfg = demo_cfg(demo_data_root)

    def make(out):
        torch.manual_seed(0)
        model = build_model_from_cfg(cfg)
        randomize_(model, 0)
        images = calibration_images(cfg, 'val', NUM)
        inputs = torch.cat(calibration_inputs(cfg, images, model))
        labels = torch.tensor([['circle', 'cross', 'square', 'triangle'].index(
            osp.basename(osp.dirname(p))) for p in images])
        # BN statistics of these images (as a trained model's fit its activations); with
        # randomize_'s alone the features hardly depend on the image
        for m in model.modules():
            if isinstance(m, _BatchNorm):
                m.momentum = 1.0
        model.train()
        with torch.no_grad():
            model(inputs, mode='tensor')
        model.eval()
        with torch.no_grad():
            feats = model.neck(model.backbone(inputs))[-1]  # (N, C)
            # ridge-regression head: logits ~ 4 * one-hot(label) - 1 on these images; the
            # ridge term keeps it from amplifying feature directions that barely vary
            a = torch.cat([feats, torch.ones(len(feats), 1)], 1).double()
            target = 4.0 * torch.nn.functional.one_hot(labels, 4).double() - 1
            gram = a.T @ a
            gram += 0.01 * gram.trace() / len(gram) * torch.eye(len(gram), dtype=gram.dtype)
            sol = torch.linalg.solve(gram, a.T @ target).float()
            model.head.fc.weight.copy_(sol[:-1].T)
            model.head.fc.bias.copy_(sol[-1])
        torch.save(dict(state_dict=model.state_dict()), osp.join(out, 'probe.pth'))
        torch.save(dict(inputs=inputs, labels=labels), osp.join(out, 'inputs.pt'))

    out = shared_dir(tmp_path_factory, 'quantize_probe', make)
    ckpt = osp.join(out, 'probe.pth')
    data = torch.load(osp.join(out, 'inputs.pt'))
    model = build_model_from_cfg(cfg, checkpoint=ckpt, deploy=True, strict=True)
    return cfg, model, data['inputs'], data['labels'], ckpt


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


def layer_steps(weight_span):
    """A quantized layer's error budget in steps of the logits' INT8 grid (range / 255):
    half a step of its 8-bit input (1/510 of the range, 0.5 step) plus half a step of its
    weights, whose integer values span ``weight_span`` (254 for 8-bit weights, 127 for
    7-bit ones: twice the relative step)."""
    return 0.5 + 127.5 / weight_span


def onnx_depth(path):
    """(quantized Conv / MatMul / Gemm nodes (an input from a DequantizeLinear), their
    error budget in steps (``layer_steps``)) on the path to the output of the largest
    budget; a weight is an integer initializer, an activation input spans 255."""
    from onnx import numpy_helper
    graph = onnx.load(path).graph
    producer = {o: n for n in graph.node for o in n.output}
    init = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    path_of = {}  # tensor -> (budget, depth) of its worst path
    for n in graph.node:  # ONNX nodes are topologically sorted
        budget, d = max((path_of.get(i, (0.0, 0)) for i in n.input), default=(0.0, 0))
        dq = [producer[i] for i in n.input
              if i in producer and producer[i].op_type == 'DequantizeLinear']
        if n.op_type in ('Conv', 'MatMul', 'Gemm') and dq:
            spans = [int(init[q.input[0]].max()) - int(init[q.input[0]].min())
                     for q in dq if q.input[0] in init]
            budget, d = budget + layer_steps(min(spans, default=255)), d + 1
        for o in n.output:
            path_of[o] = budget, d
    budget, d = path_of[graph.output[0].name]
    return d, budget


def openvino_depth(path):
    """(Convolutions / MatMuls with a FakeQuantize input, their error budget in steps)
    on the path of the largest budget; the weights are NNCF's integer constants."""
    import openvino as ov
    model = ov.Core().read_model(path)

    def weight_span(output):  # up Convert / Subtract / Multiply / Reshape to the ints
        node = output.get_node()
        while node.get_type_name() != 'Constant' and node.inputs():
            node = node.input(0).get_source_output().get_node()
        if node.get_type_name() == 'Constant' and node.get_element_type().get_type_name() in (
                'i8', 'u8'):
            data = node.get_data()
            return int(data.max()) - int(data.min())
        return 255  # an activation

    path_of = {}
    for op in model.get_ordered_ops():
        srcs = [i.get_source_output() for i in op.inputs()]
        budget, d = max((path_of[s.get_node().get_friendly_name()] for s in srcs),
                        default=(0.0, 0))
        if op.get_type_name() in ('Convolution', 'GroupConvolution', 'MatMul') and any(
                s.get_node().get_type_name() == 'FakeQuantize' for s in srcs):
            budget, d = budget + layer_steps(min(weight_span(s) for s in srcs)), d + 1
        path_of[op.get_friendly_name()] = budget, d
    return max(path_of.values())[::-1]


def assert_int8_close(got, ref, depth, budget=None):
    """RMS |INT8 - fp32| <= ``budget`` steps of the fp32 logits' INT8 step (range / 255)
    (default ``depth``: 8-bit weights and inputs, one step per layer), and equal top-1
    outside near-ties of that bound (see the module docstring)."""
    budget = depth if budget is None else budget
    step = (ref.max() - ref.min()).item() / 255
    rms = (got - ref).pow(2).mean().sqrt().item()
    assert depth >= 10, depth  # the backbone is quantized, not just the head
    assert rms <= budget * step, (f'INT8 logits off by {rms:.3g} RMS > {budget:.1f} steps '
                                  f'of {step:.3g} ({depth} layers)')
    decisions_equal_outside_ties(got, ref, bound=budget * step, dim=1)


def test_onnxruntime_int8_keeps_decisions(probe, ort_int8):
    cfg, model, inputs, labels, _ = probe
    fp32, int8 = ort_int8
    with torch.no_grad():
        ref = model(inputs, mode='tensor')
    assert (ref.argmax(1) == labels).float().mean() > 0.9  # the probe fits its images
    sess = ONNXInferencer(int8, cfg).runtime.session
    got = torch.from_numpy(sess.run(None, {'input': inputs.numpy()})[0])
    assert_int8_close(got, ref, *onnx_depth(int8))
    # and the model is INT8: Conv / MatMul / Gemm run as QLinear kernels
    float_ops = float_ops_onnx(int8)
    assert not {'Conv', 'MatMul', 'Gemm'} & set(float_ops), float_ops


@pytest.fixture(scope='module')
def ov_int8(probe, ort_int8, tmp_path_factory):
    inputs = probe[2]

    def make(out):
        quantize_openvino(ort_int8[0], osp.join(out, 'int8.xml'), list(inputs.split(1)))

    return osp.join(shared_dir(tmp_path_factory, 'quantize_ov', make), 'int8.xml')


def test_openvino_int8_keeps_decisions(probe, ov_int8):
    _, model, inputs, _, _ = probe
    with torch.no_grad():
        ref = model(inputs, mode='tensor')
    compiled = openvino_model(ov_int8)
    got = torch.from_numpy(compiled(inputs.numpy())[compiled.outputs[0]])
    assert_int8_close(got, ref, *openvino_depth(ov_int8))
    # most convolutions run in INT8 (NNCF leaves some in float, e.g. the stem's)
    precisions = collections.Counter(
        op.get_rt_info()['runtimePrecision'].astype(str).lower()
        for op in compiled.get_runtime_model().get_ops()
        if op.get_rt_info()['layerType'].astype(str) == 'Convolution')
    assert precisions['i8'] + precisions['u8'] > precisions['f32'], precisions
    assert float_ops_openvino(compiled).get('Convolution', 0) == precisions['f32']


def program_depth(module, shape):
    """Convolutions / linears (each one XNNPACKQuantizer quantizes) on the longest path
    of ``module``'s exported graph."""
    depth = {}
    for n in export_program(module, shape, dynamic_batch=False).graph.nodes:
        d = max((depth.get(a, 0) for a in n.all_input_nodes), default=0)
        in_ln = any('ChannelLayerNorm' in str(t) for _, t in
                    (n.meta.get('nn_module_stack') or {}).values())  # kept float
        depth[n] = d + (n.target in (torch.ops.aten.conv2d.default,
                                     torch.ops.aten.linear.default) and not in_ln)
    return max(depth.values())


def test_executorch_int8_keeps_decisions(probe, tmp_path, tmp_path_factory):
    """XNNPACK INT8 .pte (torchao PT2E) of the probe: logits within the bound, the
    convolutions and linears in INT8 (only the listed ops float), and it loads where
    the unfixed program failed (EMO's window padding)."""
    cfg, model, inputs, _, _ = probe
    with torch.no_grad():
        ref = model(inputs, mode='tensor')

    def make(out):
        quantize_executorch(export_wrapper(copy.deepcopy(model)), osp.join(out, 'int8.pte'),
                            list(inputs.split(1)), (64, 64),
                            metadata=dict(task='classification'), max_batch=1)

    path = osp.join(shared_dir(tmp_path_factory, 'quantize_executorch', make), 'int8.pte')
    wrapper = export_wrapper(copy.deepcopy(model))
    xnnpack_friendly(wrapper)  # as quantize_executorch changed its copy
    side = json.load(open(path + '.json'))
    assert side['task'] == 'classification' and json.loads(side['shape']) == [64, 64]
    runtime = ExecuTorchModel(path)
    got = torch.cat([runtime(x)[0] for x in inputs.split(1)])  # a batch-1 program:
    # lowered in about half the time of a dynamic-batch one (test_runtimes.py tests that)
    assert_int8_close(got, ref, program_depth(wrapper, (64, 64)))
    float_ops = float_ops_executorch(path)
    # only the LayerNorms' two mean convolutions each stay float, no linear
    lns = sum(isinstance(m, ChannelLayerNorm) for m in wrapper.modules())
    assert lns > 0 and float_ops.get('conv2d', 0) == 2 * lns, (lns, float_ops)
    assert 'linear' not in float_ops, float_ops
    assert float_ops.get('scaled_dot_product_attention', 0) > 0  # attention stays float
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
