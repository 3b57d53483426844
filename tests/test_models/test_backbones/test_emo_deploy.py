"""EMO's inference fast path: the re-parameterized (deploy) form, channels_last, and the
in-place inference ops, each proven equal to the training form and to the reference.

Equal means within the derived float32 bound of ``helpers.float32_bound`` (10 * eps32 *
sqrt(n) * max|reference| per output, n the accumulation length counted on the reference
run, backward included for gradients): the forms differ only in rounding."""
import copy

import pytest
import torch
import torch.nn.functional as F
from helpers import accumulation_length, assert_close_derived, float32_bound
from mmengine.config import Config
from reference_emo import ReferenceEMO, randomize_
from torch.nn.modules.batchnorm import _BatchNorm

from emo.apis import build_model_from_cfg
from emo.models import EMO
from emo.models.utils.irmb import LayerNorm2d

pytestmark = pytest.mark.usefixtures('single_thread')
SIZES = [(224, 224), (97, 131), (225, 225)]


def emo_like_reference(arch, **kwargs):
    """An EMO backbone (all outputs) with the weights of a randomized reference network
    (random BN statistics and affine terms), and that reference network."""
    ref = randomize_(ReferenceEMO(arch), seed=3).eval()
    model = EMO(arch, out_indices=(0, 1, 2, 3, 4), **kwargs).eval()
    model.load_state_dict({k: v for k, v in ref.state_dict().items()
                           if not k.startswith('head.')})
    return model, ref


def max_diff(outs_a, outs_b):
    return max((a - b).abs().max().item() for a, b in zip(outs_a, outs_b))


def no_grad_length(fn, *args):
    with torch.no_grad():
        return accumulation_length(fn, *args)


@pytest.mark.parametrize('arch', ['1m', '2m', '5m', '6m'])
def test_deploy_form_equals_training_form_and_reference(arch):
    model, ref = emo_like_reference(arch)
    deploy = copy.deepcopy(model)
    deploy.switch_to_deploy()
    assert deploy.deploy and all(b.deploy for s in deploy.stages() for b in s[-1:])
    # every BatchNorm is folded away; stages 1-2 lose their pre-norm entirely
    assert not any(isinstance(m, _BatchNorm) for m in deploy.modules())
    assert all(isinstance(b.norm, torch.nn.Identity) for b in deploy.stage1)
    assert deploy.stage2[0].v.conv.bias is not None
    # stage 3/4 down-samplers (no attention) keep LN without its affine part
    assert not deploy.stage3[0].norm.norm.elementwise_affine
    assert deploy.stage3[1].norm.norm.elementwise_affine  # attention reads it: kept
    torch.manual_seed(0)
    for h, w in SIZES:
        x = torch.randn(2, 3, h, w)
        with torch.no_grad():
            train_out, deploy_out = model(x), deploy(x)
            feats = ref.features(x)
            feats[-1] = ref.norm(feats[-1])
        n = no_grad_length(model, x[:1])
        assert_close_derived(deploy_out, train_out, n, what=f'{arch} {h}x{w} deploy')
        assert_close_derived(deploy_out, feats, n, what=f'{arch} {h}x{w} reference')
    n_train = sum(p.numel() for p in model.parameters())
    assert sum(p.numel() for p in deploy.parameters()) < n_train


def test_deploy_flag_builds_the_switched_structure():
    model, _ = emo_like_reference('1m')
    model.switch_to_deploy()
    model.switch_to_deploy()  # idempotent
    built = EMO('1m', out_indices=(0, 1, 2, 3, 4), deploy=True).eval()
    assert built.deploy
    assert list(built.state_dict()) == list(model.state_dict())
    built.load_state_dict(model.state_dict(), strict=True)
    x = torch.randn(1, 3, 64, 96)
    with torch.no_grad():
        assert max_diff(built(x), model(x)) == 0


def test_channels_last_and_inplace_inference_match():
    """channels_last gives the same outputs; inference never writes into its input."""
    model, ref = emo_like_reference('2m')
    cl = EMO('2m', out_indices=(0, 1, 2, 3, 4), channels_last=True).eval()
    cl.load_state_dict(model.state_dict())
    assert cl.stage1[0].v.conv.weight.is_contiguous(memory_format=torch.channels_last)
    x = torch.randn(2, 3, 97, 131)
    x0 = x.clone()
    with torch.no_grad():
        out_cl, out = cl(x), model(x)
    assert torch.equal(x, x0)
    n = no_grad_length(model, x[:1])
    assert_close_derived(out_cl, out, n, what='channels_last')
    cl.switch_to_deploy()  # keeps the memory format
    assert cl.stage0[0].convs[0][0].weight.is_contiguous(memory_format=torch.channels_last)
    with torch.no_grad():
        assert_close_derived(cl(x), out, n, what='channels_last deploy')
    # with autograd on (e.g. eval-mode attribution), the same outputs and gradients flow
    xg = x.clone().requires_grad_()
    out_grad = model(xg)
    assert_close_derived([o.detach() for o in out_grad], out, n, what='autograd on')
    sum(o.sum() for o in out_grad).backward()
    assert xg.grad is not None and torch.equal(x, x0)


@pytest.mark.parametrize('channels_last', [False, True])
def test_training_gradients_match_reference(channels_last):
    """A training step (BN in train mode, no drop path) of the training form, NCHW or
    channels_last, gives the reference network's loss and gradients."""
    ref = randomize_(ReferenceEMO('1m'), seed=5).train()
    model = EMO('1m', drop_path_rate=0.0, channels_last=channels_last).train()
    model.load_state_dict({k: v for k, v in ref.state_dict().items()
                           if not k.startswith('head.')})
    head = copy.deepcopy(ref.head)
    x, y = torch.randn(4, 3, 96, 80), torch.randint(0, 1000, (4, ))
    # the gradient w.r.t. the first conv's output: the terms of that conv's bias gradient
    first = []

    def keep(module, inputs, out):
        out.retain_grad()
        first.append(out)

    model.stage0[0].convs[0][0].register_forward_hook(keep)
    loss_ref = F.cross_entropy(ref(x), y)
    loss = F.cross_entropy(head(model(x)[0].mean((2, 3))), y)
    # n of the forward and backward (the gradients' accumulation), on a copy
    ref_copy = copy.deepcopy(ref)
    n = accumulation_length(lambda: F.cross_entropy(ref_copy(x), y).backward())
    assert_close_derived(loss, loss_ref, n, what='loss')
    loss_ref.backward()
    loss.backward()
    ref_grads = dict(ref.named_parameters())
    for name, p in model.named_parameters():
        g = ref_grads[name].grad
        if name == 'stage0.0.convs.0.0.bias':
            # a bias before a training BN: its gradient is 0, a sum of terms (the
            # gradient w.r.t. the conv output) that cancel; both are within rounding of 0
            bound = float32_bound(first[0].grad, n)
            assert p.grad.abs().max() <= bound and g.abs().max() <= bound
            continue
        assert_close_derived(p.grad, g, n, what=name)
    # running statistics advance identically
    torch.testing.assert_close(model.stage1[0].norm.running_mean,
                               ref.stage1[0].norm.running_mean)


def test_ln_affine_fold_keeps_layer_norm_semantics():
    """The stage 3 down-sampler's LN keeps normalising after its affine moved into v."""
    model, _ = emo_like_reference('1m')
    block = copy.deepcopy(model.stage3[0])
    block.switch_to_deploy()
    assert isinstance(block.norm, LayerNorm2d)
    x = torch.randn(2, 48, 13, 9)
    with torch.no_grad():
        expected = model.stage3[0](x)
        assert_close_derived(block(x), expected, no_grad_length(model.stage3[0], x[:1]))


@pytest.mark.parametrize('config, shape', [
    ('configs/classification/emo-1m_8xb256_in1k.py', (2, 3, 224, 224)),
    ('configs/detection/ssdlite_emo-5m_8xb24-600e_coco.py', (1, 3, 213, 187)),
    ('configs/detection/retinanet_emo-2m_fpn_8xb4-1x_coco.py', (1, 3, 181, 243)),
    ('configs/segmentation/deeplabv3_emo-5m_8xb4-80k_ade20k-512x512.py', (1, 3, 171, 229)),
    ('configs/segmentation/pspnet_emo-1m_8xb4-80k_ade20k-512x512.py', (1, 3, 130, 98)),
])
def test_whole_models_equal_after_switch(config, shape):
    """As classifier and as the backbone of each downstream model (their own windows,
    out_indices and odd sizes that pad the windows), the tensor outputs of the whole
    model are unchanged by switch_to_deploy."""
    model = build_model_from_cfg(Config.fromfile(config), mode='train')
    randomize_(model.backbone, seed=7)
    model.eval()
    deploy = copy.deepcopy(model)
    deploy.backbone.switch_to_deploy()
    x = torch.randn(*shape)
    with torch.no_grad():
        a = model(x, mode='tensor')
        b = deploy(x, mode='tensor')
    flat = lambda o: [t for t in (o if isinstance(o, (list, tuple)) else [o])  # noqa: E731
                      for t in (flat(t) if isinstance(t, (list, tuple)) else [t])]
    a, b = flat(a), flat(b)
    assert len(a) == len(b) > 0
    assert_close_derived(b, a, no_grad_length(model, x[:1], 'tensor'), what=config)
