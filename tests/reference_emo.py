"""A literal, test-only implementation of the released EMO classifier.

Written straight from the specification (shared/docs/emo-reference.md, section 2) with
einops windows and an explicit softmax, independently of ``emo.models``. Its
``state_dict`` has exactly the official checkpoint keys, so tests use it both as the
source of "official" files and as the oracle for logits.
"""
import torch
import torch.nn as nn
import torch.nn.functional as F
from einops import rearrange

VARIANTS = {
    '1m': ([2, 2, 8, 3], [32, 48, 80, 168], [2.0, 2.5, 3.0, 3.5], [20, 21]),
    '2m': ([3, 3, 9, 3], [32, 48, 120, 200], [2.0, 2.5, 3.0, 3.5], [20, 20]),
    '5m': ([3, 3, 9, 3], [48, 72, 160, 288], [2.0, 3.0, 4.0, 4.0], [32, 32]),
    '6m': ([3, 3, 9, 3], [48, 72, 160, 320], [2.0, 3.0, 4.0, 5.0], [20, 32]),
}


class LN2d(nn.Module):

    def __init__(self, c):
        super().__init__()
        self.norm = nn.LayerNorm(c, eps=1e-6)

    def forward(self, x):
        return rearrange(self.norm(rearrange(x, 'b c h w -> b h w c')), 'b h w c -> b c h w')


def norm(kind, c):
    return nn.BatchNorm2d(c, eps=1e-6) if kind == 'bn' else LN2d(c)


class CNA(nn.Module):

    def __init__(self, cin, cout, k=1, s=1, groups=1, bias=False, nrm=None, act=None):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, k, s, (k - 1) // 2, groups=groups, bias=bias)
        self.norm = norm(nrm, cout) if nrm else nn.Identity()
        self.act = act() if act else nn.Identity()

    def forward(self, x):
        return self.act(self.norm(self.conv(x)))


class SE(nn.Module):

    def __init__(self, c):
        super().__init__()
        self.conv_reduce = nn.Conv2d(c, c, 1)
        self.conv_expand = nn.Conv2d(c, c, 1)

    def forward(self, x):
        return x * torch.sigmoid(self.conv_expand(F.silu(self.conv_reduce(x.mean((2, 3), keepdim=True)))))


class Block(nn.Module):

    def __init__(self, cin, cout, exp, nrm, act, k, stride, attn, dim_head=None, ws=7,
                 skip=True, pre_norm=True, v=True, se=False, attn_pre=True, v_groups=1):
        super().__init__()
        self.norm = norm(nrm, cin) if pre_norm else nn.Identity()
        mid = int(cin * exp)
        self.attn, self.ws, self.attn_pre = attn, ws, attn_pre
        if attn:
            self.heads, self.dim_head = cin // dim_head, dim_head
            self.qk = CNA(cin, 2 * cin, bias=True)
        self.v = CNA(cin, mid, bias=True, act=act, groups=v_groups) if v else nn.Identity()
        self.conv_local = CNA(mid, mid, k, stride, groups=mid, nrm='bn', act=nn.SiLU)
        self.se = SE(mid) if se else nn.Identity()
        self.proj = CNA(mid, cout)
        self.skip = skip and cin == cout and stride == 1

    def forward(self, x):
        shortcut = x
        x = self.norm(x)
        if self.attn:
            B, C, H, W = x.shape
            ws = self.ws if self.ws > 0 else None
            wh, ww = (ws, ws) if ws else (H, W)
            pr, pb = (ww - W % ww) % ww, (wh - H % wh) % wh
            x = F.pad(x, (0, pr, 0, pb))
            n1, n2 = (H + pb) // wh, (W + pr) // ww
            x = rearrange(x, 'b c (h1 n1) (w1 n2) -> (b n1 n2) c h1 w1', n1=n1, n2=n2)
            b, c, h, w = x.shape
            qk = rearrange(self.qk(x), 'b (qk heads d) h w -> qk b heads (h w) d', qk=2,
                           heads=self.heads, d=self.dim_head)
            a = (qk[0] @ qk[1].transpose(-2, -1) * self.dim_head**-0.5).softmax(-1)
            if self.attn_pre:
                t = rearrange(x, 'b (heads d) h w -> b heads (h w) d', heads=self.heads)
                t = rearrange(a @ t, 'b heads (h w) d -> b (heads d) h w', h=h, w=w)
                t = self.v(t)
            else:
                t = rearrange(self.v(x), 'b (heads d) h w -> b heads (h w) d', heads=self.heads)
                t = rearrange(a @ t, 'b heads (h w) d -> b (heads d) h w', h=h, w=w)
            x = rearrange(t, '(b n1 n2) c h1 w1 -> b c (h1 n1) (w1 n2)', n1=n1, n2=n2)
            x = x[:, :, :H, :W]
        else:
            x = self.v(x)
        c = self.se(self.conv_local(x))
        x = x + c if self.skip else c
        x = self.proj(x)
        return shortcut + x if self.skip else x


class Stem(nn.Module):

    def __init__(self):
        super().__init__()
        self.convs = nn.ModuleList([nn.Sequential(nn.Conv2d(3, 24, 3, 2, 1), nn.BatchNorm2d(24, eps=1e-6))])

    def forward(self, x):
        return self.convs[0](x)


class ReferenceEMO(nn.Module):
    """The official EMO classifier: (B, 3, H, W) -> logits (B, num_classes)."""

    def __init__(self, variant='1m', num_classes=1000, window_size=7, attn_pre=True,
                 v_groups_by_heads=False):
        super().__init__()
        depths, widths, exps, dim_heads = VARIANTS[variant]
        nrms, acts, ks = ['bn', 'bn', 'ln', 'ln'], [nn.SiLU, nn.SiLU, nn.GELU, nn.GELU], [3, 3, 5, 5]
        self.stage0 = nn.ModuleList([
            Stem(), Block(24, 24, 1, 'bn', nn.SiLU, 3, 1, False, skip=False, pre_norm=False,
                          v=False, se=True)])
        cin = 24
        for i in range(4):
            blocks = []
            for j in range(depths[i]):
                attn = i >= 2 and j > 0
                dh = dim_heads[i - 2] if i >= 2 else None
                groups = cin // dh if attn and v_groups_by_heads else 1
                blocks.append(Block(cin, widths[i], exps[i] * (2 if j == 0 else 1), nrms[i], acts[i],
                                    ks[i], 2 if j == 0 else 1, attn, dh, window_size,
                                    skip=j > 0, attn_pre=attn_pre, v_groups=groups))
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
    """Give every parameter and BN buffer random, well-scaled values."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, t in model.state_dict().items():
            if t.dtype.is_floating_point:
                if name.endswith('running_var'):
                    t.copy_(torch.rand(t.shape, generator=g) + 0.5)
                elif name.endswith(('norm.weight', '.1.weight')) or 'norm.norm.weight' in name:
                    t.copy_(1 + 0.1 * torch.randn(t.shape, generator=g))
                else:
                    t.copy_(torch.randn(t.shape, generator=g) * (0.5 / max(1, t[0].numel()) ** 0.5))
    return model
