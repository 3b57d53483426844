"""Inductor forms of EMO (``emo.deployment.inductor``) equal eager PyTorch, within the
derived float32 bound (``helpers``: 10 * eps32 * sqrt(n) * max|reference|, n the
accumulation length of the eager run): the module compiled in the process
(``compile_for_inference``: freezing, one static graph per shape), the OpenMMLab model
compiled in place as ``tools/test.py --compile`` evaluates it (``compile_model``), and the
``inductor`` backend's AOTInductor package (``.pt2``, batch dynamic). The references are
the eager training form (BatchNorms unfolded) in eval mode with random weights and BN
statistics (``reference_emo.randomize_``).

Compiling is slow on a CPU (tens of seconds a graph), so every test uses one small EMO
with every block type (stride-2 blocks, the stem's SE block, windowed attention over a
padded 2x2 map, plain iRMBs; two blocks in each attention stage, widths 16-32) at 64x64,
and the ``.pt2`` is compiled once per ``make test`` (``helpers.shared_dir``; the AVX2
pass runs the package compiled in the first).
"""
import copy
import os.path as osp

import pytest
import torch
from helpers import REPO, accumulation_length, assert_close_derived, shared_dir
from mmengine.config import Config
from reference_emo import randomize_

import emo  # noqa: F401
from emo.apis import build_model_from_cfg, reparameterize_model
from emo.deployment import ModelFileError, get_backend, load_runtime
from emo.deployment.inductor import compile_for_inference, compile_model

pytestmark = pytest.mark.usefixtures('single_thread')

TINY = dict(depths=[1, 1, 2, 2], widths=[16, 16, 32, 32], exp_ratios=[2.0] * 4,
            dim_heads=[None, None, 16, 16])
SHAPE = (64, 64)


def tiny_cfg():
    cfg = Config.fromfile(f'{REPO}/configs/demo/emo-1m_demo_cls.py')
    cfg.model.backbone.arch = TINY
    cfg.model.head.in_channels = TINY['widths'][-1]
    return cfg


def tiny_classifier():
    """(training form, deploy form) of the tiny EMO classifier, eval mode, seeded."""
    model = randomize_(build_model_from_cfg(tiny_cfg())).eval()
    deploy = copy.deepcopy(model)
    assert reparameterize_model(deploy)
    return model, deploy.eval()


@pytest.fixture(autouse=True)
def fresh():
    torch.manual_seed(0)
    torch._dynamo.reset()
    yield
    torch._dynamo.reset()


def test_compiled_deploy_form_equals_eager():
    model, deploy = tiny_classifier()
    x = torch.randn(2, 3, *SHAPE)
    with torch.inference_mode():
        reference = model(x)
    n = accumulation_length(model, x)
    counters = torch._dynamo.utils.counters
    counters.clear()
    compiled = compile_for_inference(deploy)
    with torch.inference_mode():
        got = compiled(x)
    assert counters['stats']['unique_graphs'] == 1  # one graph: nothing left eager
    assert not counters['graph_break']
    assert_close_derived(got, reference, n, what='compiled deploy form')


def test_compile_model_predicts_as_eager():
    """What ``tools/test.py --compile`` and ``emo.apis.inferencer(..., compile=True)`` run:
    the predict forward of the model compiled in place (feature extractor and head), with
    the keys of its state dict unchanged; here the inferencer's model, given the eager
    model's weights before its first call (freezing reads them there)."""
    from mmpretrain.structures import DataSample

    from emo.apis import inferencer
    model, _ = tiny_classifier()
    x = torch.randn(2, 3, *SHAPE)
    samples = [DataSample() for _ in range(2)]
    with torch.no_grad():
        reference = torch.stack([s.pred_score for s in model(x, copy.deepcopy(samples),
                                                               mode='predict')])
    n = accumulation_length(lambda: model(x, copy.deepcopy(samples), mode='predict'))
    compiled = inferencer(tiny_cfg(), None, device='cpu', compile=True).model
    assert 'extract_feat' in vars(compiled)  # compiled in place
    assert list(compiled.state_dict()) == list(model.state_dict())
    compiled.load_state_dict(model.state_dict())
    with torch.no_grad():
        got = torch.stack([s.pred_score for s in compiled(x, samples, mode='predict')])
    assert_close_derived(got, reference, n, what='compiled predict scores')
    with pytest.raises(TypeError, match='has no extract_feat'):
        compile_model(torch.nn.Conv2d(3, 3, 1))


def test_inductor_backend_package_equals_eager(tmp_path_factory, tmp_path):
    model, deploy = tiny_classifier()
    backend = get_backend('inductor')

    def make(out):
        from emo.deployment import ExportSpec
        backend.export(deploy, osp.join(out, 'm.pt2'),
                       ExportSpec(SHAPE, max_batch=2, metadata=dict(task='classification')))

    path = osp.join(shared_dir(tmp_path_factory, 'inductor_tiny', make), 'm.pt2')
    runtime = load_runtime(path, threads=1)
    assert runtime.backend == 'inductor' and runtime.metadata['task'] == 'classification'
    assert runtime.input_hw == SHAPE and runtime.max_batch == 2
    for batch in (2, 1):  # dynamic batch: one package
        x = torch.randn(batch, 3, *SHAPE)
        with torch.inference_mode():
            reference = model(x)
        got = runtime(x)[0]
        assert_close_derived(got, reference, accumulation_length(model, x),
                             what=f'.pt2 batch {batch}')
    bad = tmp_path / 'bad.pt2'
    bad.write_bytes(open(path, 'rb').read()[:1000])  # truncated
    with pytest.raises(ModelFileError, match='bad.pt2'):
        load_runtime(str(bad))
