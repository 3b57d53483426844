"""A literal, test-only implementation of the released EMOv2 classifier.

Written from the semantics of the official code (zhangzjn/EMOv2, model/lib_emo/emo2.py:
``EMO2`` with ``hybrid_eopss=[[0], [0], [3], [3]]``, ``attn_pre=False``, ``ls_value=1e-6``)
with einops windows and an explicit softmax, independently of ``emo.models``: each
attention window layout is its own rearrange of the padded maps, as there. Its
``state_dict`` has exactly the official checkpoint keys, so tests use it both as the
source of "official" files and as the oracle for logits.
"""
import torch
import torch.nn as nn
import torch.nn.functional as F
from einops import rearrange

# depths, widths, exp_ratios, dim_heads (per stage) of the official factories
VARIANTS = {
    '1m': ([2, 2, 8, 3], [32, 48, 80, 180], [2.0, 2.5, 3.0, 3.5], [16, 16, 20, 20]),
    '2m': ([3, 3, 9, 3], [32, 48, 120, 200], [2.0, 2.5, 3.0, 3.5], [16, 16, 20, 20]),
    '5m': ([3, 3, 9, 3], [48, 72, 160, 288], [2.0, 3.0, 4.0, 4.0], [16, 24, 32, 32]),
    '20m': ([3, 3, 13, 3], [64, 128, 320, 448], [2.0, 3.0, 4.0, 4.0], [16, 32, 32, 32]),
}

STRIDED = 'b c (h1 n1) (w1 n2) -> (b n1 n2) c h1 w1'
CONTIGUOUS = 'b c (n1 h1) (n2 w1) -> (b n1 n2) c h1 w1'


def inverse(pattern):
    left, right = pattern.split(' -> ')
    return f'{right} -> {left}'


class LN2d(nn.Module):

    def __init__(self, c):
        super().__init__()
        self.norm = nn.LayerNorm(c, eps=1e-6)

    def forward(self, x):
        return rearrange(self.norm(rearrange(x, 'b c h w -> b h w c')), 'b h w c -> b c h w')


def norm(kind, c):
    return nn.BatchNorm2d(c, eps=1e-6) if kind == 'bn' else LN2d(c)


class CNA(nn.Module):
    """Official ConvNormAct: padding ceil((k - s) / 2)."""

    def __init__(self, cin, cout, k=1, s=1, groups=1, bias=False, nrm=None, act=None):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, k, s, -(-(k - s) // 2), groups=groups, bias=bias)
        self.norm = norm(nrm, cout) if nrm else nn.Identity()
        self.act = act() if act else nn.Identity()

    def forward(self, x):
        return self.act(self.norm(self.conv(x)))


class Conv(nn.Module):

    def __init__(self, cin, cmid, act):
        super().__init__()
        self.net = CNA(cin, cmid, bias=True, act=act)

    def forward(self, x):
        return self.net(x)


class Hybrid(nn.Module):
    """EW_MHSA_Hybrid with attn_pre=False."""

    def __init__(self, cin, cmid, act, dim_head, ws, layouts=(STRIDED, CONTIGUOUS)):
        super().__init__()
        self.heads, self.dim_head, self.ws, self.layouts = cin // dim_head, dim_head, ws, layouts
        self.qk = CNA(cin, 2 * cin, bias=True)
        self.v = CNA(cin, cmid, bias=True, act=act)

    def forward(self, x):
        B, C, H, W = x.shape
        wh, ww = (self.ws, self.ws) if self.ws > 0 else (H, W)
        pr, pb = (ww - W % ww) % ww, (wh - H % wh) % wh
        x = F.pad(x, (0, pr, 0, pb))
        n1, n2 = (H + pb) // wh, (W + pr) // ww
        qk, v = self.qk(x), self.v(x)
        out = 0
        for pattern in self.layouts:
            q_k = rearrange(qk, pattern, n1=n1, n2=n2)
            h, w = q_k.shape[-2:]
            q_k = rearrange(q_k, 'b (qk heads d) h w -> qk b heads (h w) d', qk=2,
                            heads=self.heads, d=self.dim_head)
            a = (q_k[0] @ q_k[1].transpose(-2, -1) * self.dim_head**-0.5).softmax(-1)
            t = rearrange(rearrange(v, pattern, n1=n1, n2=n2),
                          'b (heads d) h w -> b heads (h w) d', heads=self.heads)
            t = rearrange(a @ t, 'b heads (h w) d -> b (heads d) h w', h=h, w=w)
            out = out + rearrange(t, inverse(pattern), n1=n1, n2=n2)
        return out[:, :, :H, :W]


class Block(nn.Module):
    """iiRMB: norm -> eop -> DW-Conv (+x) -> proj -> LayerScale (-> + shortcut)."""

    def __init__(self, cin, cout, exp, nrm, act, stride, attn, dim_head, ws, skip,
                 dw=('bn', nn.SiLU)):
        super().__init__()
        self.norm = norm(nrm, cin)
        mid = int(cin * exp)
        self.eops = nn.ModuleList([Hybrid(cin, mid, act, dim_head, ws) if attn
                                   else Conv(cin, mid, act)])
        self.conv_local = CNA(mid, mid, 5, stride, groups=mid, nrm=dw[0], act=dw[1])
        self.proj = CNA(mid, cout)
        self.ls = nn.Module()
        self.ls.gamma = nn.Parameter(1e-6 * torch.ones(1, cout, 1, 1))
        self.skip = skip and cin == cout and stride == 1

    def forward(self, x):
        shortcut = x
        x = self.eops[0](self.norm(x))
        c = self.conv_local(x)
        x = x + c if self.skip else c
        x = self.proj(x) * self.ls.gamma
        return shortcut + x if self.skip else x


class ReferenceEMOv2(nn.Module):
    """The official EMOv2 classifier: (B, 3, H, W) -> logits (B, num_classes)."""

    def __init__(self, variant='1m', num_classes=1000, window_size=7, dw=('bn', nn.SiLU)):
        super().__init__()
        depths, widths, exps, dim_heads = VARIANTS[variant]
        nrms, acts = ['bn', 'bn', 'ln', 'ln'], [nn.SiLU, nn.SiLU, nn.GELU, nn.GELU]
        s = widths[0] // 2
        self.stage0 = nn.ModuleList([
            CNA(3, s, 3, 2, bias=True, nrm='bn', act=nn.SiLU),
            CNA(s, s, 3, 1, groups=s, nrm='bn', act=nn.SiLU),
            CNA(s, s, 1)])
        cin = s
        for i in range(4):
            blocks = []
            for j in range(depths[i]):
                blocks.append(Block(cin, widths[i], exps[i] * (2 if j == 0 else 1), nrms[i],
                                    acts[i], 2 if j == 0 else 1, i >= 2 and j > 0,
                                    dim_heads[i], window_size, j > 0, dw))
                cin = widths[i]
            setattr(self, f'stage{i + 1}', nn.ModuleList(blocks))
        self.norm = LN2d(widths[-1])
        self.head = nn.Linear(widths[-1], num_classes)

    def features(self, x):
        outs = []
        for i in range(5):
            for blk in getattr(self, f'stage{i}'):
                x = blk(x)
            outs.append(x)
        return outs

    def forward(self, x):
        x = self.norm(self.features(x)[-1])
        return self.head(x.mean((2, 3)))


def randomize_(model, seed=0):
    """Give every parameter and BN buffer random, well-scaled values (LayerScales of the
    order of 1, so that every block's branch counts)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, t in model.state_dict().items():
            if t.dtype.is_floating_point:
                if name.endswith('running_var'):
                    t.copy_(torch.rand(t.shape, generator=g) + 0.5)
                elif name.endswith(('norm.weight', 'ls.gamma')):
                    t.copy_(1 + 0.1 * torch.randn(t.shape, generator=g))
                else:
                    t.copy_(torch.randn(t.shape, generator=g) * (0.5 / max(1, t[0].numel()) ** 0.5))
    return model
