"""ONNX export of EMO models: the ONNX Runtime outputs equal the PyTorch training form,
through both exporters (the TorchScript one with dynamic H and W, the torch.export-based
one with fixed H and W).

Each model is EMO-1M with random weights and non-trivial BN statistics
(``reference_emo.randomize_``), in eval mode. The exported graph is the re-parameterized
backbone (``switch_to_deploy``) when the backbone has it; the reference is a copy of the
model before that, i.e. the training form. One export per model and ``make test``
(``helpers.shared_dir``).
Outputs are compared within the derived float32 bound of ``helpers.float32_bound``
(10 * eps32 * sqrt(n) * max|reference|, n the accumulation length counted on the
reference run), decisions (argmax, detections) only where they are not near-ties.
"""
import copy
import json
import os.path as osp

import numpy as np
import onnx
import pytest
import torch
import torch.nn as nn
from mmengine.config import Config
from helpers import (accumulation_length, assert_close_derived,
                     decisions_equal_outside_ties, detections_equal_outside_ties,
                     float32_bound, shared_dir)
from reference_emo import randomize_
from torch.nn.modules.batchnorm import _BatchNorm

import emo  # noqa: F401
from emo.apis import build_model_from_cfg, reparameterize_model, task_of
from emo.deployment import (AdaptiveAvgPool2dExport, dynamic_adaptive_pools, export_onnx,
                            export_wrapper, ort_session, read_metadata, reference_outputs,
                            verify_outputs)

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
CONFIGS = dict(
    classifier='configs/classification/emo-1m_8xb256_in1k.py',
    deeplabv3='configs/segmentation/deeplabv3_emo-1m_8xb4-80k_ade20k-512x512.py',
    pspnet='configs/segmentation/pspnet_emo-1m_8xb4-80k_ade20k-512x512.py',
    ssdlite='configs/detection/ssdlite_emo-1m_8xb24-600e_coco.py',
    retinanet='configs/detection/retinanet_emo-1m_fpn_8xb4-1x_coco.py',
)
pytestmark = pytest.mark.usefixtures('single_thread')


@pytest.fixture(autouse=True)
def seed():
    torch.manual_seed(0)


def build(name, seed=0):
    """EMO-1M model of ``name`` with random weights (``randomize_``), in eval mode.

    Segmentors: the BN statistics are then those of a random batch (as a trained
    model's fit its activations) and the classifier conv has no bias, so the label
    map has several classes rather than one everywhere."""
    model = build_model_from_cfg(Config.fromfile(osp.join(REPO, CONFIGS[name])))
    randomize_(model, seed)
    if task_of(model) == 'segmentation':
        for m in model.modules():
            if isinstance(m, _BatchNorm):
                m.momentum = 1.0
        model.train()
        with torch.no_grad():
            model(torch.randn(4, 3, 64, 64, generator=torch.Generator().manual_seed(seed)),
                  mode='tensor')
            model.decode_head.conv_seg.bias.zero_()
    return model.eval()


def export(model, path, shape, dynamic_hw):
    """Re-parameterize ``model`` in place and export it at batch 1; returns the path."""
    reparameterize_model(model)
    wrapper = export_wrapper(model)
    return export_onnx(wrapper, str(path), torch.randn(1, 3, *shape),
                       output_names=wrapper.output_names(),
                       dynamic_axes=wrapper.dynamic_axes(dynamic_hw=dynamic_hw),
                       metadata=dict(task=wrapper.task))


@pytest.fixture(scope='module')
def exported(tmp_path_factory):
    """name -> (training-form reference model, onnxruntime session), exported lazily."""
    cache = {}

    def get(name):
        if name not in cache:
            model = build(name)
            reference = copy.deepcopy(model)
            # the classifier too with dynamic H, W: one graph for 224 and an odd size
            out = shared_dir(tmp_path_factory, f'onnx_{name}', lambda out: export(
                model, osp.join(out, 'm.onnx'), (64, 64), dynamic_hw=True))
            cache[name] = reference, ort_session(osp.join(out, 'm.onnx'), threads=1)
        return cache[name]
    return get


def run(session, x):
    return [torch.from_numpy(o) for o in session.run(None, {'input': x.numpy()})]


@pytest.mark.parametrize('shape', [(224, 224), (97, 131)])
def test_classifier_logits_equal(exported, shape):
    reference, session = exported('classifier')
    x = torch.randn(2, 3, *shape)  # batch 2 through a graph traced at batch 1
    (logits, ) = run(session, x)
    with torch.no_grad():
        expected = reference(x, mode='tensor')
    assert logits.shape == (2, 1000)
    assert expected.std() > 0.1  # not a constant: the comparison can fail
    # derived float32 bound (helpers.float32_bound); top-1 equal unless a near-tie
    n = accumulation_length(reference, x[:1], mode='tensor')
    bound = assert_close_derived(logits, expected, n, what=f'logits {shape}')
    decisions_equal_outside_ties(logits, expected, bound, dim=1)


@pytest.mark.parametrize('name', ['deeplabv3', 'pspnet'])
def test_segmentation_masks_equal_at_two_sizes(exported, name):
    from mmseg.structures import SegDataSample
    reference, session = exported(name)
    for shape in [(64, 64), (80, 48)]:
        x = torch.randn(2, 3, *shape)
        (logits, ) = run(session, x)
        assert logits.shape == (2, 150, *shape)
        samples = [SegDataSample(metainfo=dict(img_shape=shape, ori_shape=shape,
                                               pad_shape=shape)) for _ in range(2)]
        with torch.no_grad():
            expected = reference.predict(x, samples)
        masks = torch.stack([s.pred_sem_seg.data[0] for s in expected])
        assert len(masks.unique()) >= 3  # a real label map, not one class
        # logits within the derived float32 bound; the mask (per-pixel argmax) equal
        # wherever the top class is not a near-tie within it
        ref_logits = torch.stack([s.seg_logits.data for s in expected])
        assert torch.equal(ref_logits.argmax(1), masks)
        n = accumulation_length(reference.predict, x[:1], samples[:1])
        bound = assert_close_derived(logits, ref_logits, n, what=f'{name} {shape}')
        decisions_equal_outside_ties(logits, ref_logits, bound, dim=1)


@pytest.mark.parametrize('name', ['ssdlite', 'retinanet'])
def test_detection_head_outputs_and_boxes_equal(exported, name):
    """Raw head outputs within the derived float32 bound (``helpers.float32_bound``, n
    counted on the reference forward); detections (decode, score threshold, top-k, NMS)
    equal wherever their fate is not a near-tie within that bound
    (``helpers.detections_equal_outside_ties`` states the rule)."""
    from mmdet.structures import DetDataSample
    reference, session = exported(name)
    head = reference.bbox_head
    for shape in [(96, 96), (64, 128)]:
        x = torch.randn(2, 3, *shape)
        outs = run(session, x)
        expected = reference_outputs(reference, x)
        n = accumulation_length(reference_outputs, reference, x[:1])
        levels = len(head.prior_generator.strides)
        assert len(outs) == len(expected) == 2 * levels
        bounds = [assert_close_derived(got, exp, n, what=f'{name} {shape} output {i}')
                  for i, (got, exp) in enumerate(zip(outs, expected))]
        # the same post-processing (decode, score threshold, NMS) as PyTorch's predict
        metas = [dict(img_shape=shape, ori_shape=shape, pad_shape=shape,
                      batch_input_shape=shape, scale_factor=(1.0, 1.0))] * 2
        samples = [DetDataSample(metainfo=m) for m in metas]
        with torch.no_grad():
            ref = reference.predict(x, samples, rescale=False)
            got = head.predict_by_feat(outs[:levels], outs[levels:], batch_img_metas=metas,
                                       rescale=False)
        assert all(len(r.pred_instances) > 0 for r in ref)
        detections_equal_outside_ties(head, expected, outs, bounds, metas, ref, got,
                                      min_decided=10)


DYNAMO_SHAPES = dict(classifier=(224, 224), deeplabv3=(64, 64), pspnet=(64, 80),
                     ssdlite=(96, 96), retinanet=(64, 128))


@pytest.mark.parametrize('name', sorted(DYNAMO_SHAPES))
def test_dynamo_exporter_outputs_equal(tmp_path_factory, name):
    """The torch.export-based exporter (the default where H and W are fixed): every
    output within the derived float32 bound of the training form's, batch 2 and 1
    through one graph (dynamic batch, fixed H and W, opset 18). Exported once per
    ``make test`` (``helpers.shared_dir``)."""
    model = build(name)
    reference = copy.deepcopy(model)
    shape = DYNAMO_SHAPES[name]

    def make(out):
        reparameterize_model(model)
        wrapper = export_wrapper(model)
        export_onnx(wrapper, osp.join(out, 'm.onnx'), torch.randn(1, 3, *shape),
                    output_names=wrapper.output_names(),
                    dynamic_axes=wrapper.dynamic_axes(dynamic_hw=False), dynamo=True)

    path = osp.join(shared_dir(tmp_path_factory, f'onnx_dynamo_{name}', make), 'm.onnx')
    graph = onnx.load(path)
    assert max(o.version for o in graph.opset_import if o.domain in ('', 'ai.onnx')) == 18
    dims = graph.graph.input[0].type.tensor_type.shape.dim
    assert dims[0].dim_param and [d.dim_value for d in dims[1:]] == [3, *shape]
    session = ort_session(path, threads=1)
    for batch in (2, 1):
        x = torch.randn(batch, 3, *shape)
        outs, expected = run(session, x), reference_outputs(reference, x)
        assert len(outs) == len(expected)
        n = accumulation_length(reference_outputs, reference, x[:1])
        for i, (got, exp) in enumerate(zip(outs, expected)):
            assert_close_derived(got, exp, n, what=f'{name} b{batch} output {i}')


def test_default_exporter_is_torchscript_for_dynamic_hw(tmp_path):
    """dynamo=None (the default) picks the torch.export-based exporter when only the
    batch is dynamic (opset 18) and the TorchScript one for dynamic H and W (opset 17,
    the H and W axes symbolic in the graph)."""
    module = nn.Sequential(nn.Conv2d(3, 2, 1), nn.ReLU())

    def exported(axes):
        graph = onnx.load(export_onnx(module, str(tmp_path / 'c.onnx'),
                                      torch.randn(1, 3, 8, 8), dynamic_axes=axes))
        opset = max(o.version for o in graph.opset_import if o.domain in ('', 'ai.onnx'))
        dims = graph.graph.input[0].type.tensor_type.shape.dim
        return opset, [bool(d.dim_param) for d in dims]
    assert exported({'input': {0: 'batch'}}) == (18, [True, False, False, False])
    assert exported({'input': {0: 'b', 2: 'h', 3: 'w'}}) == (17, [True, False, True, True])


def test_reparameterized_export_is_the_deploy_form(tmp_path):
    """The exported graph of a re-parameterized model is the deploy form (no BN left),
    and computes the training form's function. Through the TorchScript exporter (dynamic
    H, W), the quicker of the two: test_dynamo_exporter_outputs_equal covers the other."""
    model = build('classifier')
    reference = copy.deepcopy(model)
    path = export(model, tmp_path / 'c.onnx', (64, 64), dynamic_hw=True)
    if hasattr(reference.backbone, 'switch_to_deploy'):
        assert model.backbone.deploy and not reference.backbone.deploy
        # the training form keeps BNs that the exporter cannot fold (pre-norms before a
        # conv); the re-parameterized backbone has none left
        wrapper = export_wrapper(copy.deepcopy(reference))
        plain = export_onnx(wrapper, str(tmp_path / 'plain.onnx'), torch.randn(1, 3, 64, 64),
                            dynamo=False)
        ops = [{n.op_type for n in onnx.load(f).graph.node} for f in (plain, path)]
        assert 'BatchNormalization' in ops[0] and 'BatchNormalization' not in ops[1]
    x = torch.randn(3, 3, 64, 64)
    n = accumulation_length(reference_outputs, reference, x[:1])
    assert_close_derived(run(ort_session(path), x)[0], reference_outputs(reference, x)[0], n)


def test_export_onnx_writes_a_checked_model_with_metadata(tmp_path):
    module = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU())
    randomize_(module)
    module.train()  # export_onnx exports the eval form
    path = str(tmp_path / 'sub' / 'm.onnx')
    out = export_onnx(module, path, torch.randn(1, 3, 8, 8), output_names=['y'],
                      dynamic_axes={'input': {0: 'b', 2: 'h', 3: 'w'}, 'y': {0: 'b'}},
                      metadata=dict(task='test', classes=json.dumps(['a'])))
    assert out == path and not module.training
    onnx.checker.check_model(path)
    assert read_metadata(path) == dict(task='test', classes='["a"]')
    session = ort_session(path, threads=1)
    assert session.get_session_options().intra_op_num_threads == 1
    assert read_metadata(session)['task'] == 'test'
    key = 'session.intra_op.allow_spinning'
    quiet = ort_session(path, spinning=False).get_session_options()
    assert quiet.get_session_config_entry(key) == '0'
    x = torch.randn(2, 3, 5, 7)
    with torch.no_grad():
        assert_close_derived(run(session, x)[0], module(x), accumulation_length(module, x))


def test_verify_outputs_uses_the_derived_bound():
    """``verify_outputs`` (the export tools' --verify): the reference's own outputs pass
    with n counted on its batch-1 run; a change within the bound passes, a defect-sized
    one (1e-3 of the outputs' scale) does not; a wrong output count or shape is named."""
    model = build('classifier')
    x = torch.randn(2, 3, 64, 64)
    (ref, ) = reference_outputs(model, x)
    diff, bound, n = verify_outputs(model, [ref.numpy()], x)
    assert diff == 0 and n == accumulation_length(reference_outputs, model, x[:1])
    assert bound == float32_bound(ref, n)
    diff, _, _ = verify_outputs(model, [ref + bound / 2], x)
    assert 0 < diff <= bound
    diff, bound, _ = verify_outputs(model, [ref + 1e-3 * ref.abs().max()], x)
    assert diff > bound
    with pytest.raises(ValueError, match='2 outputs, the model has 1'):
        verify_outputs(model, [ref, ref], x)
    with pytest.raises(ValueError, match=r'output of shape \(2, 999\), the model gives'):
        verify_outputs(model, [ref[:, 1:]], x)


def test_ort_session_names_a_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match='nothere.onnx'):
        ort_session(str(tmp_path / 'nothere.onnx'))


@pytest.mark.parametrize('out_size', [2, 3, 6, (2, 5)])
def test_adaptive_pool_export_equals_torch(out_size):
    pool, export_pool = nn.AdaptiveAvgPool2d(out_size), AdaptiveAvgPool2dExport(out_size)
    for shape in [(7, 7), (13, 5), (3, 17), (16, 16)]:
        x = torch.randn(2, 4, *shape)
        # a pooling sum has terms of one sign: the linear (worst-case) rule
        assert_close_derived(export_pool(x), pool(x), accumulation_length(pool, x),
                             linear=True)


def test_dynamic_adaptive_pools_replaces_only_non_global_pools():
    m = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Sequential(nn.AdaptiveAvgPool2d(3)),
                      nn.AdaptiveAvgPool2d((2, 6)))
    assert dynamic_adaptive_pools(m) == 2
    assert isinstance(m[0], nn.AdaptiveAvgPool2d)
    assert isinstance(m[1][0], AdaptiveAvgPool2dExport) and m[1][0].output_size == (3, 3)
    assert m[2].output_size == (2, 6)


def test_task_of_and_wrappers():
    assert task_of(build('classifier')) == 'classification'
    assert task_of(build('ssdlite')) == 'detection'
    with pytest.raises(TypeError, match='cannot tell the task'):
        task_of(nn.Conv2d(3, 3, 1))
    wrapper = export_wrapper(build('retinanet'))
    assert wrapper.output_names() == ([f'cls_score_{i}' for i in range(5)] +
                                      [f'bbox_pred_{i}' for i in range(5)])
    axes = wrapper.dynamic_axes()
    assert axes['input'] == {0: 'batch', 2: 'height', 3: 'width'}
    assert axes['bbox_pred_4'] == {0: 'batch', 2: 'height_4', 3: 'width_4'}
    assert np.all([not m.training for m in wrapper.modules()])
