"""EMO backbone: shapes, equality with the literal reference network, options, errors.

Values are compared within the derived float32 bound of ``helpers.float32_bound`` (10 *
eps32 * sqrt(n) * max|reference|, n the accumulation length counted on the reference
run): the implementations differ only in rounding."""
import pytest
import torch
from helpers import accumulation_length, assert_close_derived, float32_bound
from mmengine.registry import MODELS, DefaultScope
from reference_emo import ReferenceEMO, randomize_
from torch.nn.modules.batchnorm import _BatchNorm

from emo.models import EMO

WIDTHS = {'1m': [32, 48, 80, 168], '2m': [32, 48, 120, 200],
          '5m': [48, 72, 160, 288], '6m': [48, 72, 160, 320]}


def ceil_div(n, k):
    return -(-n // k)


@pytest.mark.parametrize('arch', ['1m', '2m', '5m', '6m'])
def test_outputs_match_reference(arch):
    """Every variant, at 224 and odd sizes: output shapes (strides 2..32, ceil) and the
    values of the reference network carrying the same (official-key) weights."""
    ref = randomize_(ReferenceEMO(arch), seed=1).eval()
    model = EMO(arch, out_indices=(0, 1, 2, 3, 4)).eval()
    missing = model.load_state_dict(
        {k: v for k, v in ref.state_dict().items() if not k.startswith('head.')})
    assert not missing.missing_keys and not missing.unexpected_keys
    assert model.out_channels == [24] + WIDTHS[arch]
    torch.manual_seed(0)
    for h, w in [(224, 224), (97, 131), (225, 225)]:
        x = torch.randn(1, 3, h, w)
        with torch.no_grad():
            outs = model(x)
            feats = ref.features(x)
            feats[-1] = ref.norm(feats[-1])
            n = accumulation_length(ref, x)
        assert len(outs) == 5
        for i, (out, feat) in enumerate(zip(outs, feats)):
            stride = 2**(i + 1)
            assert out.shape == (1, ([24] + WIDTHS[arch])[i], ceil_div(h, stride),
                                 ceil_div(w, stride))
            assert_close_derived(out, feat, n, what=f'{arch} {h}x{w} output {i}')


def test_out_indices_and_final_norm():
    x = torch.randn(1, 3, 64, 64)
    model = EMO('1m', out_indices=(1, 2, 3, 4), final_norm=False).eval()
    assert not hasattr(model, 'norm')
    outs = model(x)
    assert [o.shape[1] for o in outs] == WIDTHS['1m']
    with_norm = EMO('1m', out_indices=(-1, )).eval()
    with_norm.load_state_dict(model.state_dict(), strict=False)
    (last, ) = with_norm(x)
    # the final LayerNorm normalises each pixel over channels: the channel mean is 0 up
    # to the rounding of the norm and of the mean (n counted on them)
    with torch.no_grad():
        n = accumulation_length(lambda: with_norm.norm(outs[-1]).mean(1))
    assert last.mean(1).abs().max() <= float32_bound(last, n)
    assert not torch.allclose(last, outs[-1])


def test_window_size_changes_attention():
    """At 14x14 (stage 3 of a 224 input = 28/2) window 7 splits into 4 strided windows,
    window 14 / global attends over all: different results; per-stage sizes allowed."""
    x = torch.randn(1, 3, 224, 224)
    a = EMO('1m', window_size=7).eval()
    b = EMO('1m', window_size=[7, 7, 14, 7]).eval()
    c = EMO('1m', window_size=0).eval()
    b.load_state_dict(a.state_dict())
    c.load_state_dict(a.state_dict())
    with torch.no_grad():
        ya, yb, yc = a(x)[0], b(x)[0], c(x)[0]
        n = accumulation_length(c, x)
    assert (ya - yb).abs().max() > float32_bound(yb, n)  # not rounding: another function
    assert_close_derived(yb, yc, n)  # 14 covers the 14x14 map: global
    assert [blk.window_size for blk in b.stage3[1:]] == [14] * 7


def test_drop_path_rates():
    model = EMO('2m')
    rates = [blk.drop_path.drop_prob if hasattr(blk.drop_path, 'drop_prob') else 0.0
             for i in range(1, 5) for blk in getattr(model, f'stage{i}')]
    expected = torch.linspace(0, 0.05, 18).tolist()
    assert rates == pytest.approx(expected)
    model = EMO('2m', drop_path_rate=0.0)
    assert all(isinstance(b.drop_path, torch.nn.Identity) for b in model.stage4)


def test_frozen_stages_and_norm_eval():
    model = EMO('1m', out_indices=(1, 2, 3, 4), frozen_stages=1, norm_eval=True)
    model.train()
    for name, p in model.named_parameters():
        assert p.requires_grad == (not name.startswith(('stage0', 'stage1'))), name
    for name, m in model.named_modules():
        if name.startswith(('stage0', 'stage1')):
            assert not m.training, name
        if isinstance(m, _BatchNorm):
            assert not m.training, name
    assert model.stage3.training  # LN stages still train
    model.train()
    x = torch.randn(2, 3, 64, 64)
    bn = model.stage2[0].norm
    before = bn.running_mean.clone()
    sum(o.sum() for o in model(x)).backward()
    assert torch.equal(bn.running_mean, before)  # norm_eval: stats frozen
    assert model.stage0[0].convs[0][0].weight.grad is None
    assert model.stage2[0].v.conv.weight.grad is not None
    # without norm_eval, BN trains
    model = EMO('1m', frozen_stages=-1).train()
    assert model.stage2[0].norm.training


def test_custom_arch_dict():
    arch = dict(depths=[1, 1, 2, 2], widths=[16, 24, 32, 64], exp_ratios=[2, 2, 2, 2],
                dim_heads=[None, None, 16, 16])
    model = EMO(arch, out_indices=(4, )).eval()
    assert model(torch.randn(1, 3, 32, 32))[0].shape == (1, 64, 1, 1)
    assert len(model.stage3) == 2 and model.stage3[1].num_heads == 2


@pytest.mark.parametrize('kwargs, error, words', [
    (dict(arch='3m'), KeyError, 'unknown arch'),
    (dict(arch=dict(depths=[1, 1, 1, 1])), KeyError, 'misses'),
    (dict(arch=dict(depths=[1, 1, 2, 2], widths=[16, 24, 30, 64], exp_ratios=[2] * 4,
                    dim_heads=[None, None, 16, 16])), ValueError, 'does not divide'),
    (dict(out_indices=(5, )), ValueError, 'out_indices'),
    (dict(frozen_stages=5), ValueError, 'frozen_stages'),
    (dict(window_size=[7, 7]), ValueError, 'window_size'),
])
def test_bad_arguments_raise(kwargs, error, words):
    with pytest.raises(error, match=words):
        EMO(**kwargs)


@pytest.mark.parametrize('scope', ['mmpretrain', 'mmdet', 'mmseg'])
def test_builds_under_every_scope(scope):
    """type='EMO' resolves under each library's default scope (root registration)."""
    with DefaultScope.overwrite_default_scope(scope):
        from mmengine.registry import init_default_scope
        init_default_scope(scope)
        model = MODELS.build(dict(type='EMO', arch='1m', out_indices=(2, 4)))
    assert isinstance(model, EMO)
    assert [o.shape[1] for o in model(torch.randn(1, 3, 64, 64))] == [48, 168]


def test_geometry():
    """EMO answers for its own geometry: which stages attend, the input multiple at which
    no map is padded (every window whole), and the output sizes (ceil halving)."""
    model = EMO('1m', out_indices=(0, 1, 2, 3, 4)).eval()
    assert model.attention_stages() == (3, 4)
    assert model.size_divisor == 224  # lcm(16 * 7, 32 * 7)
    assert EMO('1m', window_size=[7, 7, 4, 5]).size_divisor == 320  # lcm(16 * 4, 32 * 5)
    assert EMO('1m', window_size=0).size_divisor == 32  # global attention: strides only
    no_attn = EMO(dict(depths=[1, 1, 1, 1], widths=[16, 16, 16, 16], exp_ratios=[1] * 4,
                       dim_heads=[None] * 4, attn_stages=[False] * 4))
    assert no_attn.attention_stages() == () and no_attn.size_divisor == 32
    with torch.no_grad():
        outs = model(torch.randn(1, 3, 97, 131))
    assert [tuple(o.shape[-2:]) for o in outs] == list(model.feature_shapes((97, 131)))
