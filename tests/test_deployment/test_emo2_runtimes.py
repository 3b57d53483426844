"""EMOv2 on every runtime: the ONNX Runtime, OpenVINO and ExecuTorch (XNNPACK) forms of
the EMOv2-1M classifier equal its PyTorch training form, as EMO's do
(tests/test_deployment/test_onnx.py, test_runtimes.py).

The model has random weights, non-trivial BN statistics and LayerScales of the order of 1
(``reference_emo2.randomize_``), in eval mode; what is exported is the re-parameterized
deploy form (BNs folded into the convs, LayerScales into the projections), the reference
a copy of the model before that. Logits are compared within the derived float32 bound
(``helpers.float32_bound``: 10 * eps32 * sqrt(n) * max|reference|, n counted on the
reference run), top-1 outside near-ties. One small variant per runtime; each file is
exported once per ``make test`` (``helpers.shared_dir``): the ONNX graph with dynamic H, W
(224 and an odd size, where the attention pads), the OpenVINO model read from it, one
batch-1 ExecuTorch program at 224. Core ML: the package converts (its prediction needs
macOS, as for EMO). INT8 is not covered for EMOv2 yet (test_quantize.py's probe is EMO's).
"""
import copy
import json
import os.path as osp

import pytest
import torch
from helpers import (REPO, accumulation_length, assert_close_derived,
                     decisions_equal_outside_ties, shared_dir)
from mmengine.config import Config
from reference_emo2 import randomize_

import emo  # noqa: F401
from emo.apis import build_model_from_cfg, reparameterize_model
from emo.deployment import export_onnx, export_wrapper
from emo.deployment.executorch import ExecuTorchModel, export_executorch
from emo.deployment.openvino import OpenVINOModel, export_openvino

CONFIG = osp.join(REPO, 'configs/classification/emov2-1m_8xb128_in1k.py')
pytestmark = pytest.mark.usefixtures('single_thread')


@pytest.fixture(autouse=True)
def seed():
    torch.manual_seed(0)


@pytest.fixture(scope='module')
def models():
    """(training-form reference, re-parameterized task wrapper) of EMOv2-1M."""
    torch.manual_seed(0)
    model = randomize_(build_model_from_cfg(Config.fromfile(CONFIG)), 0).eval()
    reference = copy.deepcopy(model)
    assert reparameterize_model(model) >= 1
    assert not any(type(m).__name__ in ('LayerScale2d', 'BatchNorm2d')
                   for m in model.modules())
    return reference, export_wrapper(model)


@pytest.fixture(scope='module')
def onnx_file(models, tmp_path_factory):
    _, wrapper = models

    def make(out):
        export_onnx(wrapper, osp.join(out, 'm.onnx'), torch.randn(1, 3, 64, 64),
                    output_names=wrapper.output_names(),
                    dynamic_axes=wrapper.dynamic_axes(dynamic_hw=True),
                    metadata=dict(task=wrapper.task))
    return osp.join(shared_dir(tmp_path_factory, 'emo2_onnx', make), 'm.onnx')


def check_logits(reference, logits, x):
    with torch.no_grad():
        expected = reference(x, mode='tensor')
    assert logits.shape == expected.shape == (x.shape[0], 1000)
    assert expected.std() > 0.1  # not a constant: the comparison can fail
    n = accumulation_length(reference, x[:1], mode='tensor')
    bound = assert_close_derived(logits, expected, n, what=f'logits {tuple(x.shape)}')
    decisions_equal_outside_ties(logits, expected, bound, dim=1)


SHAPES = [(224, 224), (97, 131)]


@pytest.mark.numerical
@pytest.mark.parametrize('shape', SHAPES)
def test_onnxruntime_logits_equal(models, onnx_file, shape):
    from emo.deployment import load_runtime
    runtime = load_runtime(onnx_file, threads=1)
    x = torch.randn(2, 3, *shape)  # batch 2 through a graph traced at batch 1
    check_logits(models[0], runtime(x)[0], x)


@pytest.fixture(scope='module')
def openvino_file(onnx_file, tmp_path_factory):
    def make(out):
        export_openvino(onnx_file, osp.join(out, 'm.xml'))
    return osp.join(shared_dir(tmp_path_factory, 'emo2_openvino', make), 'm.xml')


@pytest.mark.numerical
@pytest.mark.parametrize('shape', SHAPES)
def test_openvino_logits_equal(models, openvino_file, shape):
    runtime = OpenVINOModel(openvino_file, threads=1)
    x = torch.randn(2, 3, *shape)
    check_logits(models[0], runtime(x)[0], x)


@pytest.fixture(scope='module')
def executorch_runtime(models, tmp_path_factory):
    _, wrapper = models

    def make(out):
        export_executorch(wrapper, osp.join(out, 'm.pte'), (224, 224), max_batch=1,
                          metadata=dict(task=wrapper.task))
    path = osp.join(shared_dir(tmp_path_factory, 'emo2_executorch', make), 'm.pte')
    return ExecuTorchModel(path, threads=1)


@pytest.mark.numerical
def test_executorch_logits_equal_and_lowers_whole(models, executorch_runtime):
    x = torch.randn(1, 3, 224, 224)
    check_logits(models[0], executorch_runtime(x)[0], x)
    # both window layouts, the padding and the folded LayerScales run in XNNPACK: what
    # stays in the portable kernels is shape bookkeeping, no arithmetic
    portable = json.loads(executorch_runtime.metadata['portable_ops'])
    arithmetic = [op for op in portable
                  if not any(k in op for k in ('view', 'squeeze', 'alias', 'as_strided',
                                               'sym_size', 'alloc', 'slice_copy',
                                               'mul.Scalar'))]
    assert 'alloc' in portable and arithmetic == [], arithmetic


def test_coreml_package_converts(models, tmp_path):
    """Core ML: the deploy form converts whole to an ML program with the image input of
    the export size (prediction needs macOS: not run here, as for EMO)."""
    import coremltools as ct

    from emo.deployment.coreml import export_coreml
    reference, _ = models
    model = copy.deepcopy(reference)
    reparameterize_model(model)
    path = export_coreml(model, str(tmp_path / 'emov2.mlpackage'), (64, 96),
                         classes=[f'c{i}' for i in range(1000)],
                         metadata=dict(task='classification'))
    spec = ct.utils.load_spec(path)
    assert spec.WhichOneof('Type') == 'mlProgram'
    (image, ) = spec.description.input
    assert (image.type.imageType.height, image.type.imageType.width) == (64, 96)
    main = spec.mlProgram.functions['main']
    ops = {op.type for op in main.block_specializations[main.opset].operations}
    assert {'conv', 'matmul', 'softmax', 'classify'} <= ops, ops
