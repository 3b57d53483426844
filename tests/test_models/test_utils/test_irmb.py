"""iRMB and the Meta Mobile Block: windows, attention order, each M2B instantiation.
Values are compared within the derived float32 bound of ``helpers.float32_bound``."""
import pytest
import torch
import torch.nn as nn
from helpers import accumulation_length, assert_close_derived, float32_bound
from mmcv.cnn.bricks.transformer import FFN
from mmpretrain.models.backbones.mobilenet_v2 import InvertedResidual
from reference_emo import Block, randomize_

from emo.models import MetaMobileBlock, iRMB
from emo.models.utils.irmb import pad_to_windows, window_partition, window_reverse


def test_strided_grid_windows():
    """Window (a, b) holds pixels (a + n1*i, b + n2*j); padding is right/bottom zeros."""
    H, W, ws = 10, 13, 5
    idx = torch.arange(H * W, dtype=torch.float).view(1, 1, H, W) + 1
    padded, grid = pad_to_windows(idx, ws)
    assert padded.shape[-2:] == (10, 15) and grid == (5, 5, 2, 3)
    tokens = window_partition(padded, grid)  # (n1*n2, ws*ws, 1)
    n1, n2 = 2, 3
    for a in range(n1):
        for b in range(n2):
            win = tokens[a * n2 + b, :, 0].view(ws, ws)
            for i in range(ws):
                for j in range(ws):
                    r, c = a + n1 * i, b + n2 * j
                    want = idx[0, 0, r, c] if r < H and c < W else 0
                    assert win[i, j] == want
    assert torch.equal(window_reverse(tokens, grid), padded)  # data movement: exact
    assert torch.equal(window_reverse(tokens, grid)[..., :H, :W], idx)


@pytest.mark.parametrize('grouped', [True, False])
def test_attention_order_equivalence(grouped):
    """attn(x) then a head-grouped linear expansion == expansion then attention; with an
    ungrouped expansion the two orders are different functions."""
    torch.manual_seed(0)
    kw = dict(exp_ratio=3.0, norm_cfg=dict(type='LN'), act_cfg=None, attn=True, dim_head=8,
              window_size=4, dw_kernel_size=5, v_groups=4 if grouped else 1)
    pre = iRMB(32, 32, attn_pre=True, **kw).eval()
    post = iRMB(32, 32, attn_pre=False, **kw).eval()
    post.load_state_dict(pre.state_dict())
    x = torch.randn(2, 32, 11, 9)
    with torch.no_grad():
        a, n = pre(x), accumulation_length(pre, x)
        same = (a - post(x)).abs().max() <= float32_bound(a, n)  # equal up to rounding
    assert same == grouped


def test_ew_mhsa_block_matches_reference_irmb():
    """MetaMobileBlock(operator='ew_mhsa') is EMO's iRMB (stage 3/4 block)."""
    ref = randomize_(Block(64, 64, 3.0, 'ln', nn.GELU, 5, 1, True, dim_head=16, ws=7))
    block = MetaMobileBlock(64, 3.0, 'ew_mhsa', dim_head=16).eval()
    block.load_state_dict(ref.state_dict())
    x = torch.randn(2, 64, 15, 10)
    with torch.no_grad():
        assert_close_derived(block(x), ref.eval()(x), accumulation_length(ref, x))


def _copy_in_order(dst, src):
    """Copy tensors by position (same layer order, different names)."""
    d, s = dst.state_dict(), list(src.state_dict().values())
    assert len(d) == len(s)
    dst.load_state_dict({k: v.reshape(d[k].shape) for k, v in zip(d, s)})


def test_dwconv_operator_is_mobilenetv2_irb():
    irb = randomize_(InvertedResidual(32, 32, stride=1, expand_ratio=6,
                                      act_cfg=dict(type='ReLU6'))).eval()
    block = MetaMobileBlock(32, 6.0, 'dwconv').eval()
    _copy_in_order(block, irb)
    x = torch.randn(2, 32, 9, 13)
    with torch.no_grad():
        assert_close_derived(block(x), irb(x), accumulation_length(irb, x))


def test_identity_operator_is_ffn():
    ffn = FFN(embed_dims=48, feedforward_channels=192, act_cfg=dict(type='GELU'))
    ln = nn.LayerNorm(48, eps=1e-6)
    block = MetaMobileBlock(48, 4.0, 'identity').eval()
    _copy_in_order(block, nn.ModuleList([ln, ffn]))
    x = torch.randn(2, 48, 5, 7)
    tokens = x.flatten(2).transpose(1, 2)
    want = ffn(ln(tokens), identity=tokens).transpose(1, 2).reshape(x.shape)
    n = accumulation_length(lambda: ffn(ln(tokens), identity=tokens))
    assert_close_derived(block(x).detach(), want.detach(), n)
    assert block.conv_local is None and not block.attn


def test_mhsa_operator_is_multihead_attention():
    mha = nn.MultiheadAttention(48, 3, batch_first=True).eval()
    ln = nn.LayerNorm(48, eps=1e-6)
    block = MetaMobileBlock(48, 1.0, 'mhsa', dim_head=16).eval()
    with torch.no_grad():
        block.norm.norm.load_state_dict(ln.state_dict())
        w, b = mha.in_proj_weight, mha.in_proj_bias
        block.qk.conv.weight.copy_(w[:96, :, None, None])
        block.qk.conv.bias.copy_(b[:96])
        block.v.conv.weight.copy_(w[96:, :, None, None])
        block.v.conv.bias.copy_(b[96:])
        block.proj.conv.weight.copy_(mha.out_proj.weight[:, :, None, None])
        block.proj.conv.bias.copy_(mha.out_proj.bias)
    x = torch.randn(2, 48, 6, 5)
    tokens = x.flatten(2).transpose(1, 2)
    with torch.no_grad():
        t = ln(tokens)
        want = tokens + mha(t, t, t, need_weights=False)[0]
        n = accumulation_length(lambda: mha(ln(tokens), ln(tokens), ln(tokens)))
        assert_close_derived(block(x), want.transpose(1, 2).reshape(x.shape), n)


def test_block_errors_name_the_problem():
    with pytest.raises(ValueError, match='dim_head=24 does not divide the block width 64'):
        iRMB(64, 64, attn=True, dim_head=24)
    with pytest.raises(ValueError, match='unknown operator'):
        MetaMobileBlock(32, 2.0, 'conv')
    with pytest.raises(ValueError, match='heads do not divide the expanded width'):
        iRMB(64, 64, exp_ratio=1.3, attn=True, dim_head=16, attn_pre=False, window_size=7)
