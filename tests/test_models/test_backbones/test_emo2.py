"""EMOv2 backbone and i²RMB: equality with the literal reference network (every variant,
at a window multiple and an odd size), the deploy form, options, geometry, errors.

Values are compared within the derived float32 bound (``helpers.float32_bound``: 10 *
eps32 * sqrt(n) * max|reference|, n the accumulation length counted on the reference
run): the implementations differ only in rounding."""
import pytest
import torch
import torch.nn as nn
from helpers import accumulation_length, assert_close_derived, float32_bound
from mmengine.registry import MODELS, DefaultScope
from reference_emo2 import STRIDED, ReferenceEMOv2, randomize_
from torch.nn.modules.batchnorm import _BatchNorm

from emo.models import EMOv2
from emo.models.utils import LayerScale2d, iiRMB

WIDTHS = {'1m': [32, 48, 80, 180], '2m': [32, 48, 120, 200],
          '5m': [48, 72, 160, 288], '20m': [64, 128, 320, 448]}


def ceil_div(n, k):
    return -(-n // k)


def pair(arch, seed=1, window_size=7, **kwargs):
    """A randomized reference and an EMOv2 carrying its (official-key) weights."""
    dw = kwargs.pop('dw', ('bn', nn.SiLU))
    ref = randomize_(ReferenceEMOv2(arch, window_size=window_size, dw=dw), seed=seed).eval()
    model = EMOv2(arch, out_indices=(0, 1, 2, 3, 4), window_size=window_size,
                  **kwargs).eval()
    res = model.load_state_dict(
        {k: v for k, v in ref.state_dict().items() if not k.startswith('head.')})
    assert not res.missing_keys and not res.unexpected_keys
    return ref, model


def compare(ref, model, x, what):
    with torch.no_grad():
        outs = model(x)
        feats = ref.features(x)
        feats[-1] = ref.norm(feats[-1])
        n = accumulation_length(ref, x)
    for i, (out, feat) in enumerate(zip(outs, feats)):
        assert out.shape == feat.shape, (what, i)
        assert_close_derived(out, feat, n, what=f'{what} output {i}')
    return outs


# (arch, window multiple, odd size): 224 = 16 * 7 * 2 tiles stage 3 into 2 x 2 windows of
# 7 and stage 4 into one; the 20M variant only at the smallest multiple of its windows
# (window 4: 128 = 32 * 4) to stay cheap.
CASES = [('1m', 7, (224, 224), (97, 131)), ('2m', 7, (224, 224), (65, 99)),
         ('5m', 7, (224, 224), (97, 131)), ('20m', 4, (128, 128), (65, 33))]


@pytest.mark.numerical
@pytest.mark.parametrize('arch,window,multiple,odd', CASES, ids=[c[0] for c in CASES])
def test_outputs_match_reference(arch, window, multiple, odd):
    ref, model = pair(arch, window_size=window)
    assert model.out_channels == [WIDTHS[arch][0] // 2] + WIDTHS[arch]
    torch.manual_seed(0)
    for h, w in (multiple, odd):
        outs = compare(ref, model, torch.randn(1, 3, h, w), f'{arch} {h}x{w}')
        for i, out in enumerate(outs):
            assert out.shape[-2:] == (ceil_div(h, 2**(i + 1)), ceil_div(w, 2**(i + 1)))


@pytest.mark.numerical
def test_512_setting_window_8():
    """The *_256 / *_512 factories: window 8 (stage 4 of a 256 input is one window)."""
    ref, model = pair('1m', seed=2, window_size=EMOv2.WINDOW_SIZES[256])
    compare(ref, model, torch.randn(1, 3, 256, 256), '1m 256 window 8')
    assert model.size_divisor == 256 and EMOv2('1m').size_divisor == 224


@pytest.mark.numerical
def test_window_layouts():
    """Only strided windows is the official 'remote' operator (EW_MHSA_Remote); the two
    layouts are different functions of the input at a map of several windows."""
    ref, strided = pair('1m', seed=3, windows=('strided', ))
    for blk in ref.stage3[1:]:
        blk.eops[0].layouts = (STRIDED, )
    for blk in ref.stage4[1:]:
        blk.eops[0].layouts = (STRIDED, )
    x = torch.randn(1, 3, 224, 224)
    compare(ref, strided, x, 'strided windows only')
    both = EMOv2('1m', out_indices=(3, )).eval()
    contiguous = EMOv2('1m', out_indices=(3, ), windows='contiguous').eval()
    contiguous.load_state_dict(both.state_dict())
    with torch.no_grad():
        a, b = both(x)[0], contiguous(x)[0]
        n = accumulation_length(both, x)
    assert (a - b).abs().max() > float32_bound(a, n)


@pytest.mark.numerical
def test_segmentation_dw_norm():
    """The official repository's current segmentation backbone: LN + GELU after every
    DW-Conv (the published segmentation runs had BN + SiLU)."""
    ref, model = pair('1m', seed=4, window_size=10, dw=('ln', nn.GELU),
                      dw_norm_cfg=dict(type='LN'), dw_act_cfg=dict(type='GELU'))
    compare(ref, model, torch.randn(1, 3, 97, 131), 'dw LN + GELU')


@pytest.mark.numerical
@pytest.mark.parametrize('arch', ['1m', '5m'])
def test_switch_to_deploy_matches_training_form(arch):
    """BNs folded into the stem and DW convs, LayerScale into proj, the 1x1 blocks'
    pre-norms into their expansion: same eval outputs, at a window multiple and an odd
    size; nothing of the training form is left."""
    _, model = pair(arch, seed=5)
    deploy = EMOv2(arch, out_indices=(0, 1, 2, 3, 4)).eval()
    deploy.load_state_dict(model.state_dict())
    deploy.switch_to_deploy()
    assert deploy.deploy
    assert not any(isinstance(m, (_BatchNorm, LayerScale2d)) for m in deploy.modules())
    assert all(blk.norm.__class__.__name__ == 'LayerNorm2d'
               for blk in deploy.stage3[1:])  # attention blocks keep their norm
    for h, w in [(224, 224), (97, 131)]:
        x = torch.randn(1, 3, h, w)
        with torch.no_grad():
            ref = model(x)
            got = deploy(x)
            n = accumulation_length(model, x)
        for i, (a, b) in enumerate(zip(got, ref)):
            assert_close_derived(a, b, n, what=f'{arch} deploy {h}x{w} output {i}')
    rebuilt = EMOv2(arch, out_indices=(0, 1, 2, 3, 4), deploy=True).eval()
    rebuilt.load_state_dict(deploy.state_dict())  # the deploy form's keys


def test_block_structure_follows_the_official_factories():
    model = EMOv2('2m')
    stem = model.stage0
    assert [m.conv.kernel_size for m in stem] == [(3, 3), (3, 3), (1, 1)]
    assert stem[1].conv.groups == 16 and stem[2].conv.bias is None
    first, block, attn = model.stage3[0], model.stage2[1], model.stage3[1]
    assert first.operator == 'conv' and not first.has_skip
    assert first.conv_local.conv.stride == (2, 2)
    assert first.eops[0].net.conv.out_channels == 48 * 3.0 * 2
    assert block.operator == 'conv' and block.has_skip
    assert attn.operator == 'attn' and attn.eops[0].num_heads == 6 and attn.window_size == 7
    assert attn.eops[0].v.conv.out_channels == 360
    assert all(b.conv_local.conv.kernel_size == (5, 5) for s in model.stages()[1:] for b in s)
    assert float(attn.ls.gamma.detach().flatten()[0]) == pytest.approx(1e-6)
    rates = [b.drop_path.drop_prob if hasattr(b.drop_path, 'drop_prob') else 0.0
             for s in model.stages()[1:] for b in s]
    assert rates == pytest.approx(torch.linspace(0, 0.05, 18).tolist())


def test_frozen_stages_and_norm_eval():
    model = EMOv2('1m', out_indices=(1, 2, 3, 4), frozen_stages=1, norm_eval=True).train()
    for name, p in model.named_parameters():
        assert p.requires_grad == (not name.startswith(('stage0', 'stage1'))), name
    assert all(not m.training for m in model.modules() if isinstance(m, _BatchNorm))
    sum(o.sum() for o in model(torch.randn(1, 3, 64, 64))).backward()
    assert model.stage0[0].conv.weight.grad is None
    assert model.stage3[1].eops[0].qk.conv.weight.grad is not None


def test_geometry():
    model = EMOv2('5m', out_indices=(0, 1, 2, 3, 4), window_size=10).eval()
    assert model.attention_stages() == (3, 4) and model.size_divisor == 320
    with torch.no_grad():
        outs = model(torch.randn(1, 3, 65, 97))
    assert [tuple(o.shape[-2:]) for o in outs] == list(model.feature_shapes((65, 97)))


@pytest.mark.parametrize('kwargs, error, words', [
    (dict(arch='6m'), KeyError, 'EMOv2: unknown arch'),
    (dict(arch=dict(depths=[1, 1, 2, 2], widths=[16, 24, 30, 64], exp_ratios=[2] * 4,
                    dim_heads=[None, None, 16, 16])), ValueError, 'does not divide'),
    (dict(windows=('strided', 'shifted')), ValueError, 'windows'),
    (dict(out_indices=(5, )), ValueError, 'EMOv2: out_indices'),
])
def test_bad_arguments_raise(kwargs, error, words):
    with pytest.raises(error, match=words):
        EMOv2(**kwargs)


def test_block_bad_operator():
    with pytest.raises(ValueError, match="operator must be 'conv' or 'attn'"):
        iiRMB(16, 16, operator='mhsa')


@pytest.mark.parametrize('scope', ['mmpretrain', 'mmdet', 'mmseg'])
def test_builds_under_every_scope(scope):
    with DefaultScope.overwrite_default_scope(scope):
        model = MODELS.build(dict(type='EMOv2', arch='1m', out_indices=(2, 4)))
    assert isinstance(model, EMOv2)
    assert [o.shape[1] for o in model(torch.randn(1, 3, 64, 64))] == [48, 180]
