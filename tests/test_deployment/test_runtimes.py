"""ExecuTorch (XNNPACK), OpenVINO and Core ML forms of EMO classifiers equal the PyTorch
training form.

Each model has random weights and non-trivial BN statistics (``reference_emo.randomize_``)
in eval mode; the exported graph is the re-parameterized deploy form, the reference a
copy of the model before that (the training form). Logits are compared within the
derived float32 bound of ``helpers.float32_bound``: 10 * eps32 * sqrt(n) * max|reference|,
n the accumulation length counted on the reference run (two float32 computations of one
function that differ only in rounding stay within it; a wrong fold, pad or layout does
not). At 224 that bound is ~1e-4 for logits of magnitude ~3; measured differences are
~1e-6. Top-1 is compared outside near-ties. One export per model and ``make test``
(``helpers.shared_dir``); every test seeded.
"""
import copy
import json
import os.path as osp

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from helpers import (REPO, accumulation_length, assert_close_derived,
                     decisions_equal_outside_ties, shared_dir)
from mmengine.config import Config
from reference_emo import randomize_

import emo  # noqa: F401
from emo.apis import build_model_from_cfg, reparameterize_model
from emo.deployment import export_onnx, export_wrapper, load_runtime
from emo.deployment.executorch import (ChannelLayerNorm, ExecuTorchModel,
                                       export_executorch, sdpa_as_bmm, xnnpack_friendly)
from emo.deployment.openvino import OpenVINOModel, export_openvino
from emo.models.utils.irmb import LayerNorm2d

VARIANTS = ('1m', '2m', '5m', '6m')
pytestmark = pytest.mark.usefixtures('single_thread')


@pytest.fixture(autouse=True)
def seed():
    torch.manual_seed(0)


def config(variant):
    return Config.fromfile(osp.join(REPO, f'configs/classification/emo-{variant}_8xb256_in1k.py'))


def build(variant):
    """(training-form reference, re-parameterized task wrapper) of EMO-``variant``."""
    torch.manual_seed(0)
    model = randomize_(build_model_from_cfg(config(variant)), 0).eval()
    reference = copy.deepcopy(model)
    reparameterize_model(model)
    return reference, export_wrapper(model)


def check_logits(reference, logits, x):
    """Logits of the runtime vs the training form: within the derived float32 bound
    (accumulation length counted on the reference run), top-1 equal outside near-ties."""
    with torch.no_grad():
        expected = reference(x, mode='tensor')
    assert logits.shape == expected.shape
    assert expected.std() > 0.1  # not a constant: the comparison can fail
    n = accumulation_length(reference, x[:1], mode='tensor')
    bound = assert_close_derived(logits, expected, n, what=f'logits {tuple(x.shape)}')
    decisions_equal_outside_ties(logits, expected, bound, dim=1)


# ExecuTorch programs have a fixed batch or one dynamic up to max_batch; lowering the
# dynamic one takes about twice as long (its symbolic reshapes split the graph into more
# XNNPACK partitions), so it is tested on one variant and the others at batch 1.
MAX_BATCH = {'1m': 3}


@pytest.fixture(scope='module')
def exported(tmp_path_factory):
    """(variant, backend) -> (reference, runtime). Each file is exported once per
    ``make test`` (``helpers.shared_dir``); the reference is built here (seeded)."""
    cache = {}

    def get(variant, backend):
        key = variant, backend
        if key not in cache:
            reference, wrapper = build(variant)

            def make(out):
                if backend == 'executorch':
                    export_executorch(wrapper, osp.join(out, 'm.pte'), (224, 224),
                                      max_batch=MAX_BATCH.get(variant, 1),
                                      metadata=dict(task=wrapper.task))
                elif backend == 'openvino':
                    export_openvino(wrapper, osp.join(out, 'm.xml'), (224, 224),
                                    metadata=dict(task=wrapper.task))
                else:  # openvino from a TorchScript-exported ONNX file with dynamic H, W
                    onnx_file = export_onnx(
                        wrapper, osp.join(out, 'm.onnx'), torch.randn(1, 3, 64, 64),
                        output_names=wrapper.output_names(),
                        dynamic_axes=wrapper.dynamic_axes(dynamic_hw=True))
                    export_openvino(onnx_file, osp.join(out, 'm.xml'))

            out = shared_dir(tmp_path_factory, f'runtimes_{backend}_{variant}', make)
            if backend == 'executorch':
                runtime = ExecuTorchModel(osp.join(out, 'm.pte'), threads=1)
            else:
                runtime = OpenVINOModel(osp.join(out, 'm.xml'), threads=1)
            cache[key] = reference, runtime
        return cache[key]
    return get


@pytest.mark.parametrize('variant', VARIANTS)
def test_executorch_logits_equal(exported, variant):
    reference, runtime = exported(variant, 'executorch')
    max_batch = MAX_BATCH.get(variant, 1)
    for batch in sorted({max_batch, 1}, reverse=True):  # dynamic batch: one program
        x = torch.randn(batch, 3, 224, 224)
        check_logits(reference, runtime(x)[0], x)
    with pytest.raises(ValueError, match=f'at most {max_batch} images'):
        runtime(torch.randn(max_batch + 1, 3, 224, 224))
    with pytest.raises(ValueError, match=r'takes H, W = \[224, 224\]'):
        runtime(torch.randn(1, 3, 97, 131))


@pytest.mark.parametrize('variant', VARIANTS)
def test_openvino_logits_equal(exported, variant):
    reference, runtime = exported(variant, 'openvino')
    assert runtime.metadata == dict(task='classification')
    for batch in (2, 1):
        x = torch.randn(batch, 3, 224, 224)
        check_logits(reference, runtime(x)[0], x)


@pytest.mark.parametrize('shape', [(224, 224), (97, 131)])
def test_openvino_from_onnx_keeps_dynamic_hw(exported, shape):
    reference, runtime = exported('1m', 'openvino_onnx')
    x = torch.randn(2, 3, *shape)
    check_logits(reference, runtime(x)[0], x)


@pytest.mark.parametrize('variant', VARIANTS)
def test_emo_lowers_whole_to_xnnpack(exported, variant):
    """Every convolution, matmul, norm and attention op runs in XNNPACK: what stays in
    ExecuTorch's portable kernels (recorded at export) is shape bookkeeping (views,
    squeezes of the q/k split, symbolic sizes, memory allocation), no arithmetic."""
    _, runtime = exported(variant, 'executorch')
    portable = json.loads(runtime.metadata['portable_ops'])
    assert 'alloc' in portable  # the list is real: memory allocation is always there
    arithmetic = [op for op in portable
                  if not any(k in op for k in ('view', 'squeeze', 'alias', 'as_strided',
                                               'sym_size', 'alloc', 'slice_copy',
                                               'mul.Scalar'))]
    assert arithmetic == [], arithmetic


def test_channel_layer_norm_equals_layer_norm2d():
    ln = LayerNorm2d(24, eps=1e-6)
    nn.init.normal_(ln.norm.weight)
    nn.init.normal_(ln.norm.bias)
    conv_form = ChannelLayerNorm.from_layer_norm(ln.norm)
    x = torch.randn(2, 24, 9, 13) * 3 + 1
    with torch.no_grad():
        # mean and variance over C=24 channels: n counted on the reference run
        assert_close_derived(conv_form(x), ln(x), accumulation_length(ln, x))
    from mmpretrain.models.utils import LayerNorm2d as MMPretrainLN2d
    mm_ln = MMPretrainLN2d(24, eps=1e-6)
    nn.init.normal_(mm_ln.weight)
    converted = ChannelLayerNorm.from_layer_norm(mm_ln)
    with torch.no_grad():
        for fmt, t in (('channel_first', x), ('channel_last', x.permute(0, 2, 3, 1))):
            assert_close_derived(converted(t, data_format=fmt), mm_ln(t, data_format=fmt),
                                 accumulation_length(mm_ln, t, data_format=fmt))
    module = nn.Sequential(nn.Conv2d(3, 24, 1), LayerNorm2d(24), nn.Sequential(LayerNorm2d(24)))
    assert xnnpack_friendly(module) == 2
    assert isinstance(module[1], ChannelLayerNorm) and isinstance(module[2][0],
                                                                  ChannelLayerNorm)


def test_sdpa_as_bmm_equals_sdpa():
    q, k, v = torch.randn(3, 2, 4, 49, 16).unbind(0)
    expected = F.scaled_dot_product_attention(q, k, v, scale=0.3)
    n = accumulation_length(F.scaled_dot_product_attention, q, k, v, scale=0.3)
    assert_close_derived(sdpa_as_bmm(q, k, v, scale=0.3), expected, n)
    with pytest.raises(NotImplementedError, match='unmasked'):
        sdpa_as_bmm(q, k, v, attn_mask=torch.ones(49, 49, dtype=torch.bool))


def test_load_runtime_by_extension(tmp_path):
    with pytest.raises(FileNotFoundError, match='nothere.pte'):
        load_runtime(str(tmp_path / 'nothere.pte'))
    other = tmp_path / 'model.bin'
    other.write_bytes(b'\0')
    with pytest.raises(ValueError, match="model.bin: cannot tell the runtime from the "
                       "extension '.bin'"):
        load_runtime(str(other))
    with pytest.raises(ValueError, match='ends with .pte'):
        export_executorch(nn.Conv2d(3, 3, 1), str(tmp_path / 'm.onnx'), (8, 8))


def test_coreml_package_interface(tmp_path):
    """The Core ML package of a classifier: image input of the export size in the
    config's channel order, the class labels given, probabilities and top label out,
    the metadata. (Prediction needs macOS: not run here.)"""
    import coremltools as ct

    from emo.deployment.coreml import NormalizedClassifier, export_coreml
    cfg = config('1m')
    model = randomize_(build_model_from_cfg(cfg), 0).eval()
    reference = copy.deepcopy(model)
    reparameterize_model(model)
    classes = [f'n{i:04d}' for i in range(1000)]
    path = export_coreml(model, str(tmp_path / 'emo.mlpackage'), (64, 96), classes=classes,
                         metadata=dict(task='classification'))
    spec = ct.utils.load_spec(path)
    assert spec.WhichOneof('Type') == 'mlProgram'
    (image, ) = spec.description.input
    assert image.name == 'image' and image.type.WhichOneof('Type') == 'imageType'
    assert (image.type.imageType.height, image.type.imageType.width) == (64, 96)
    pre = reference.data_preprocessor
    expected_space = 'RGB' if pre.to_rgb else 'BGR'
    assert ct.proto.FeatureTypes_pb2.ImageFeatureType.ColorSpace.Name(
        image.type.imageType.colorSpace) == expected_space
    assert spec.description.predictedFeatureName == 'classLabel'
    outputs = {o.name for o in spec.description.output}
    assert outputs == {'classLabel', spec.description.predictedProbabilitiesName}
    # the labels are the immediate value of the program's classify op
    main = spec.mlProgram.functions['main']
    (classify, ) = [op for op in main.block_specializations[main.opset].operations
                    if op.type == 'classify']
    values = classify.inputs['classes'].arguments[0].value.immediateValue.list.values
    labels = [v.immediateValue.tensor.strings.values[0] for v in values]
    assert labels == classes
    assert spec.description.metadata.userDefined['task'] == 'classification'
    # what the package computes before conversion: softmax of the logits of the
    # normalised 0-255 image, as mmpretrain's predict
    wrapper = NormalizedClassifier(reference, pre.mean.flatten().tolist(),
                                   pre.std.flatten().tolist())
    img = torch.rand(2, 3, 64, 96) * 255
    with torch.no_grad():
        expected = torch.softmax(reference((img - pre.mean) / pre.std, mode='tensor'), 1)
        assert torch.equal(wrapper(img), expected)
    with pytest.raises(ValueError, match='3 class names for a 1000-class model'):
        export_coreml(model, str(tmp_path / 'x.mlpackage'), (64, 64), classes=['a'] * 3)
