"""The inverted residual mobile block (iRMB) and the Meta Mobile Block (M2B) of EMO.

M2B: ``Y = X + MLP_s(F(MLP_e(X)))``. ``MLP_e`` (``v``) expands the channels by the ratio
lambda, ``F`` is an efficient operator, ``MLP_s`` (``proj``) shrinks back. The iRMB is the
instance with ``F = DW-Conv(EW-MHSA(.))`` and a skip around the DW-Conv.

Sub-module names follow the official EMO code (``norm``, ``qk``, ``v``, ``conv_local``,
``se``, ``proj``) so official checkpoints load without renaming.
"""
from functools import partial
from typing import Optional

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmcv.cnn import build_activation_layer, build_norm_layer, fuse_conv_bn
from mmcv.cnn.bricks import DropPath
from mmengine.registry import MODELS
from torch.nn.modules.batchnorm import _BatchNorm

#: Norm and activation defaults of the released network (every norm uses eps 1e-6).
BN = dict(type='BN', eps=1e-6)
LN = dict(type='LN', eps=1e-6)


class LayerNorm2d(nn.Module):
    """LayerNorm over the channels of an NCHW map: (B, C, H, W) -> (B, C, H, W).

    Wraps ``nn.LayerNorm`` as ``self.norm`` (the official parameter names).
    """

    def __init__(self, num_channels: int, eps: float = 1e-6):
        super().__init__()
        self.norm = nn.LayerNorm(num_channels, eps=eps)

    def forward(self, x):
        return self.norm(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)


def norm_affine(norm: nn.Module):
    """``(scale, shift)`` per channel of an eval-mode norm that is one, or None.

    BatchNorm (running statistics) is entirely ``x * scale + shift``; for a LayerNorm2d
    it is the affine part applied after the normalisation."""
    if isinstance(norm, _BatchNorm):
        scale = norm.running_var.add(norm.eps).rsqrt()
        shift = -norm.running_mean * scale
        if norm.affine:
            scale, shift = scale * norm.weight, shift * norm.weight + norm.bias
        return scale, shift
    if isinstance(norm, LayerNorm2d) and norm.norm.elementwise_affine:
        return norm.norm.weight, norm.norm.bias
    return None


@torch.no_grad()
def fold_affine_into_conv(conv: nn.Conv2d, scale, shift):
    """Make the 1x1 conv ``conv(x * scale + shift)`` a conv of ``x``, in place:
    ``W' = W * scale`` (per input channel), ``b' = b + W @ shift``."""
    assert conv.kernel_size == (1, 1) and conv.groups == 1
    w = conv.weight
    bias = w.flatten(1) @ shift
    if conv.bias is not None:
        bias += conv.bias
    conv.weight = nn.Parameter(w * scale.view(1, -1, 1, 1))
    conv.bias = nn.Parameter(bias)


@torch.no_grad()
def fold_pre_norm(norm: nn.Module, conv: nn.Conv2d) -> nn.Module:
    """Fold a pre-norm's per-channel affine part into the 1x1 ``conv`` that alone reads
    its output, in place; returns the norm that is left to run before ``conv``.

    A BatchNorm (running statistics) is entirely affine: nothing is left (Identity). A
    :class:`LayerNorm2d` keeps its normalisation, without affine parameters (the same
    object, so its key ``norm.norm`` stays). Any other norm is returned as it is, and
    ``conv`` is unchanged. Shared by the iRMB of EMO and the i²RMB of EMOv2."""
    affine = norm_affine(norm)
    if affine is None:
        return norm
    fold_affine_into_conv(conv, *affine)
    if isinstance(norm, LayerNorm2d):
        ln = norm.norm
        norm.norm = nn.LayerNorm(ln.normalized_shape, ln.eps, elementwise_affine=False)
        return norm
    return nn.Identity()


def build_norm(cfg: Optional[dict], num_channels: int) -> nn.Module:
    """Norm layer for NCHW maps. ``type='LN'`` (or ``'LN2d'``) is a channel LayerNorm;
    any other type (BN, SyncBN, GN, ...) is built by mmcv. ``None`` gives identity."""
    if cfg is None:
        return nn.Identity()
    cfg = dict(cfg)
    if cfg['type'] in ('LN', 'LN2d'):
        return LayerNorm2d(num_channels, eps=cfg.get('eps', 1e-6))
    return build_norm_layer(cfg, num_channels)[1]


def build_act(cfg: Optional[dict]) -> nn.Module:
    return nn.Identity() if cfg is None else build_activation_layer(dict(cfg))


#: In-place forms of the activations that have one. Used without autograd only: with
#: autograd an in-place activation clones its input, which is slower.
INPLACE_ACTS = {nn.SiLU: partial(F.silu, inplace=True), nn.ReLU: F.relu_,
                nn.ReLU6: partial(F.relu6, inplace=True),
                nn.Hardswish: partial(F.hardswish, inplace=True)}


class ConvNormAct(nn.Module):
    """Conv2d -> norm -> act with 'same' padding: (B, C_in, H, W) -> (B, C_out, H/s, W/s)."""

    def __init__(self, in_channels, out_channels, kernel_size=1, stride=1, groups=1,
                 bias=False, norm_cfg=None, act_cfg=None):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size, stride,
                              (kernel_size - 1) // 2, groups=groups, bias=bias)
        self.norm = build_norm(norm_cfg, out_channels)
        self.act = build_act(act_cfg)

    def forward(self, x):
        x = self.norm(self.conv(x))
        if not torch.is_grad_enabled() and type(self.act) in INPLACE_ACTS:
            # the fresh conv / norm output is overwritten: on a CPU, allocating a new
            # output costs more than the activation itself
            return INPLACE_ACTS[type(self.act)](x)
        return self.act(x)


class SqueezeExcite(nn.Module):
    """Squeeze-and-excitation: x * sigmoid(expand(act(reduce(mean_hw(x)))))."""

    def __init__(self, channels: int, ratio: float = 1.0, act_cfg=dict(type='SiLU')):
        super().__init__()
        mid = round(channels * ratio)
        self.conv_reduce = nn.Conv2d(channels, mid, 1, bias=True)
        self.act = build_act(act_cfg)
        self.conv_expand = nn.Conv2d(mid, channels, 1, bias=True)

    def forward(self, x, inplace: bool = False):
        """``inplace`` overwrites ``x`` (for a fresh map, without autograd)."""
        s = self.conv_expand(self.act(self.conv_reduce(x.mean((2, 3), keepdim=True))))
        return x.mul_(s.sigmoid_()) if inplace else x * s.sigmoid()


def pad_to_windows(x: torch.Tensor, window_size: int):
    """Zero-pad (B, C, H, W) right/bottom to multiples of the window size.

    Returns the padded map and its grid ``(ws_h, ws_w, n1, n2)``; ``window_size <= 0``
    means one window covering the whole map (global attention). The pad is always applied
    (zero wide when the map is whole): no branch on the map size, so the shape arithmetic
    traces and exports (``torch.export``, ONNX) with dynamic H and W.
    """
    H, W = x.shape[-2:]
    ws_h, ws_w = (H, W) if window_size <= 0 else (window_size, window_size)
    pad_b, pad_r = (-H) % ws_h, (-W) % ws_w
    x = F.pad(x, (0, pad_r, 0, pad_b))
    return x, (ws_h, ws_w, (H + pad_b) // ws_h, (W + pad_r) // ws_w)


def window_partition(x: torch.Tensor, grid, contiguous: bool = False):
    """Padded (B, C, n1*ws, n2*ws) -> tokens (B*n1*n2, ws*ws, C), one copy.

    EMO's strided-grid windows by default: window (a, b) holds the pixels
    (a + n1*i, b + n2*j), i, j in [0, ws). ``contiguous``: the ws x ws tiles of Swin
    (window (a, b) holds (ws*a + i, ws*b + j)); EMOv2 attends in both."""
    ws_h, ws_w, n1, n2 = grid
    B, C = x.shape[:2]
    if contiguous:
        x = x.view(B, C, n1, ws_h, n2, ws_w).permute(0, 2, 4, 3, 5, 1)
    else:
        x = x.view(B, C, ws_h, n1, ws_w, n2).permute(0, 3, 5, 2, 4, 1)
    return x.reshape(B * n1 * n2, ws_h * ws_w, C)


def window_reverse(tokens: torch.Tensor, grid, contiguous: bool = False):
    """Inverse of :func:`window_partition` (same ``contiguous``): (B*n1*n2, ws*ws, C) ->
    the padded map (B, C, n1*ws, n2*ws); the caller crops it to the unpadded size."""
    ws_h, ws_w, n1, n2 = grid
    C = tokens.shape[-1]
    x = tokens.view(tokens.shape[0] // (n1 * n2), n1, n2, ws_h, ws_w, C)
    # (B, H, W, C) order of the pixels: rows (ws, n1) strided, (n1, ws) contiguous
    x = x.permute(0, 1, 3, 2, 4, 5) if contiguous else x.permute(0, 3, 1, 4, 2, 5)
    # one copy into (B, H, W, C) memory: an NCHW view in channels_last layout
    return x.reshape(-1, ws_h * n1, ws_w * n2, C).permute(0, 3, 1, 2)


class MobileBlockBase(nn.Module):
    """What every one-residual Meta Mobile Block here starts with (the iRMB of EMO, the
    i²RMB of EMOv2): ``self.deploy``, the residual rule (a skip only where the widths
    match and the stride is 1), the pre-norm ``self.norm`` and the expanded width
    ``self.mid_channels = int(in_channels * exp_ratio)``."""

    def __init__(self, in_channels: int, out_channels: int, exp_ratio: float,
                 norm_cfg: Optional[dict], stride: int, has_skip: bool):
        super().__init__()
        self.deploy = False
        self.mid_channels = int(in_channels * exp_ratio)
        self.has_skip = has_skip and in_channels == out_channels and stride == 1
        self.norm = build_norm(norm_cfg, in_channels)


class WindowAttentionMixin:
    """Multi-head softmax attention within windows, as the iRMB's EW-MHSA and the
    i²RMB's hybrid attention compute it: heads of ``dim_head`` channels, ``qk`` a 1x1
    conv ``C -> 2C`` (q, then k), scale ``dim_head ** -0.5``."""

    def _init_attention(self, block: str, in_channels: int, dim_head: int, window_size: int,
                        qkv_bias: bool, attn_drop: float,
                        value_channels: Optional[int] = None):
        """Set ``num_heads``, ``dim_head``, ``window_size``, ``attn_drop`` and the ``qk``
        conv; the width must split into whole heads (and ``value_channels``, where given,
        into as many), else a ValueError that names ``block``."""
        if dim_head <= 0 or in_channels % dim_head:
            raise ValueError(f'{block}: dim_head={dim_head} does not divide the block width '
                             f'{in_channels}; heads = width // dim_head must be whole')
        self.num_heads = in_channels // dim_head
        if value_channels is not None and value_channels % self.num_heads:
            raise ValueError(f'{block}: {self.num_heads} heads do not divide the expanded '
                             f'width {value_channels}')
        self.dim_head = dim_head
        self.window_size = int(window_size)
        self.attn_drop = attn_drop
        self.qk = ConvNormAct(in_channels, 2 * in_channels, 1, bias=qkv_bias)

    def _attend(self, qk: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """Tokens ``qk`` (b, n, 2C) and ``v`` (b, n, C_v) of b windows of n pixels ->
        the attention's output tokens (b, n, C_v)."""
        b, n, _ = qk.shape
        q, k = qk.view(b, n, 2, self.num_heads, self.dim_head).permute(2, 0, 3, 1, 4)
        v = v.view(b, n, self.num_heads, -1).transpose(1, 2)
        out = F.scaled_dot_product_attention(
            q, k, v, dropout_p=self.attn_drop if self.training else 0.0,
            scale=self.dim_head**-0.5)
        return out.transpose(1, 2).reshape(b, n, -1)


@MODELS.register_module()
class iRMB(WindowAttentionMixin, MobileBlockBase):
    """Inverted residual mobile block: (B, C_in, H, W) -> (B, C_out, H/stride, W/stride).

    ``x -> norm -> [EW-MHSA] -> v (1x1, expand to C_in * exp_ratio, act) -> DW-Conv
    (+ skip) -> [SE] -> proj (1x1) -> + shortcut``. With ``attn_pre`` (the released
    order) the attention mixes the normalised input split into heads of ``dim_head``
    channels and ``v`` expands afterwards; otherwise it mixes the expanded values.

    Args:
        in_channels / out_channels (int): block widths.
        exp_ratio (float): expansion ratio lambda of ``v``. Default 1.0.
        norm_cfg (dict | None): the pre-norm of the block input (None: no pre-norm).
        act_cfg (dict | None): activation after ``v`` (and inside SE).
        stride (int): stride of the depthwise conv.
        dw_kernel_size (int): depthwise kernel; 0 drops the DW-Conv (F has no conv).
        dw_norm_cfg / dw_act_cfg: norm/act after the DW-Conv (BN + SiLU in EMO).
        has_skip (bool): block skip (only used when widths match and stride is 1).
        local_skip (bool | None): skip around the DW-Conv; None follows the block skip.
        se_ratio (float): SE reduction ratio, 0 for no SE.
        attn (bool): use the (expanded-window) MHSA.
        dim_head (int): channels per head; must divide ``in_channels``.
        window_size (int): strided-grid window size; <= 0 for global attention.
        attn_pre (bool): attention before the ``v`` expansion.
        qkv_bias (bool): bias of the ``qk`` and ``v`` convs.
        v_proj (bool): have ``v`` at all (the stem block has none).
        v_groups (int): groups of the ``v`` conv (``num_heads`` makes attn_pre exact).
        v_norm_cfg / proj_norm_cfg (dict | None): norm after ``v`` / ``proj``
            (MobileNetV2-style IRB); None in EMO.
        proj_bias (bool): bias of ``proj`` (False in EMO).
        drop_path (float): stochastic depth on the residual branch.
        attn_drop / drop (float): dropout on the attention / before ``proj``.

    :meth:`switch_to_deploy` turns the block into its inference form (BatchNorms folded
    into the convs); ``self.deploy`` tells which form it is.
    """

    def __init__(self,
                 in_channels: int,
                 out_channels: int,
                 exp_ratio: float = 1.0,
                 norm_cfg: Optional[dict] = BN,
                 act_cfg: Optional[dict] = dict(type='SiLU'),
                 stride: int = 1,
                 dw_kernel_size: int = 3,
                 dw_norm_cfg: Optional[dict] = BN,
                 dw_act_cfg: Optional[dict] = dict(type='SiLU'),
                 has_skip: bool = True,
                 local_skip: Optional[bool] = None,
                 se_ratio: float = 0.0,
                 attn: bool = False,
                 dim_head: int = 64,
                 window_size: int = 7,
                 attn_pre: bool = True,
                 qkv_bias: bool = True,
                 v_proj: bool = True,
                 v_groups: int = 1,
                 v_norm_cfg: Optional[dict] = None,
                 proj_norm_cfg: Optional[dict] = None,
                 proj_bias: bool = False,
                 drop_path: float = 0.0,
                 attn_drop: float = 0.0,
                 drop: float = 0.0):
        super().__init__(in_channels, out_channels, exp_ratio, norm_cfg, stride, has_skip)
        mid_channels = self.mid_channels
        self.local_skip = self.has_skip if local_skip is None else local_skip
        self.attn = attn
        if attn:
            if attn_pre and v_proj is False:
                raise ValueError('iRMB: attn_pre needs v_proj')
            self.attn_pre = attn_pre
            self._init_attention('iRMB', in_channels, dim_head, window_size, qkv_bias,
                                 attn_drop, None if attn_pre else mid_channels)
        if v_proj:
            if mid_channels % v_groups or in_channels % v_groups:
                raise ValueError(f'iRMB: v_groups={v_groups} does not divide the widths '
                                 f'{in_channels} -> {mid_channels}')
            self.v = ConvNormAct(in_channels, mid_channels, 1, groups=v_groups,
                                 bias=qkv_bias, norm_cfg=v_norm_cfg, act_cfg=act_cfg)
        elif mid_channels != in_channels:
            raise ValueError('iRMB: without v_proj the expansion ratio must be 1')
        else:
            self.v = nn.Identity()
        if dw_kernel_size > 0:
            self.conv_local = ConvNormAct(mid_channels, mid_channels, dw_kernel_size, stride,
                                          groups=mid_channels, norm_cfg=dw_norm_cfg,
                                          act_cfg=dw_act_cfg)
        elif stride != 1:
            raise ValueError('iRMB: a stride needs the depthwise conv (dw_kernel_size > 0)')
        else:
            self.conv_local = None
        self.se = SqueezeExcite(mid_channels, se_ratio, act_cfg) if se_ratio > 0 else None
        self.proj_drop = nn.Dropout(drop)
        self.proj = ConvNormAct(mid_channels, out_channels, 1, bias=proj_bias,
                                norm_cfg=proj_norm_cfg)
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()

    def _attention(self, x):
        """EW-MHSA in strided-grid windows: (B, C, H, W) -> (B, C_mid, H, W)."""
        H, W = x.shape[-2:]
        x, grid = pad_to_windows(x, self.window_size)
        tokens = window_partition(x, grid)  # (b, N, C), one copy
        # qk is a 1x1 conv: a linear map of the tokens. Padded tokens are not masked;
        # they get q = k = bias, as the official per-window convs give them.
        qk = F.linear(tokens, self.qk.conv.weight.flatten(1), self.qk.conv.bias)
        v = tokens if self.attn_pre else window_partition(self.v(x), grid)
        out = window_reverse(self._attend(qk, v), grid)
        if not self.attn_pre:
            return out[:, :, :H, :W]
        if self.deploy:  # v is pointwise: crop first, no work on padded pixels
            return self.v(out[:, :, :H, :W])
        # the training form runs v on the padded map, as the official code does, so that
        # FLOP counts at sizes that are not window multiples match the released network's
        # (mmengine counts the padded pixels); the outputs are the same
        return self.v(out)[:, :, :H, :W]

    @torch.no_grad()
    def switch_to_deploy(self):
        """Re-parameterize for inference, in place (mmpretrain's convention): every
        BatchNorm after a conv (DW-Conv, and ``v`` / ``proj`` where they have one) is
        folded into that conv; a BatchNorm pre-norm, or a LayerNorm pre-norm's affine
        part, is folded into ``v`` when nothing else reads the normalised map (blocks
        without attention). Eval-mode outputs are unchanged; BNs become Identity."""
        if self.deploy:
            return
        for m in (self.v, self.conv_local, self.proj):
            if isinstance(m, ConvNormAct):
                fuse_conv_bn(m)
        if (not self.attn and isinstance(self.v, ConvNormAct)
                and isinstance(self.v.norm, nn.Identity) and self.v.conv.groups == 1):
            self.norm = fold_pre_norm(self.norm, self.v.conv)
        self.deploy = True

    def forward(self, x):
        # Without autograd, SE and the local sum reuse the fresh DW-Conv output.
        inplace = not torch.is_grad_enabled()
        shortcut = x
        x = self.norm(x)
        x = self._attention(x) if self.attn else self.v(x)
        if self.conv_local is not None:
            c = self.conv_local(x)
            if self.se is not None:
                c = self.se(c, inplace)
            if self.local_skip:
                x = c.add_(x) if inplace else x + c
            else:
                x = c
        elif self.se is not None:
            x = self.se(x)
        x = self.proj(self.proj_drop(x))
        if not self.has_skip:
            return x
        # proj's fresh output is not saved for its backward: add the shortcut in place
        return self.drop_path(x).add_(shortcut)


@MODELS.register_module()
class MetaMobileBlock(iRMB):
    """Meta Mobile Block ``Y = X + MLP_s(F(MLP_e(X)))``: (B, C, H, W) -> (B, C, H, W).

    ``exp_ratio`` is lambda and ``operator`` is F; each choice starts from the settings
    of the block it instantiates, and any iRMB argument given in ``kwargs`` overrides them:

    * ``'dwconv'``: MobileNetV2 inverted residual block (IRB), lambda > 1:
      1x1 conv+BN+ReLU6 -> 3x3 DW conv+BN+ReLU6 -> 1x1 conv+BN, no pre-norm.
    * ``'identity'``: transformer FFN (lambda = 4): LN -> 1x1 (Linear) -> GELU -> 1x1.
    * ``'mhsa'``: multi-head self-attention (lambda = 1): LN -> q,k,v projections ->
      global softmax attention -> output projection.
    * ``'ew_mhsa'``: the iRMB: LN -> EW-MHSA (windowed, attention first) ->
      1x1 expand + act -> DW-Conv(+skip) -> 1x1.
    """

    OPERATORS = dict(
        dwconv=dict(norm_cfg=None, act_cfg=dict(type='ReLU6'), v_norm_cfg=dict(type='BN'),
                    dw_kernel_size=3, dw_norm_cfg=dict(type='BN'),
                    dw_act_cfg=dict(type='ReLU6'), local_skip=False, qkv_bias=False,
                    proj_norm_cfg=dict(type='BN')),
        identity=dict(norm_cfg=LN, act_cfg=dict(type='GELU'), dw_kernel_size=0,
                      proj_bias=True),
        mhsa=dict(norm_cfg=LN, act_cfg=None, dw_kernel_size=0, attn=True,
                  attn_pre=False, window_size=0, proj_bias=True),
        ew_mhsa=dict(norm_cfg=LN, act_cfg=dict(type='GELU'), dw_kernel_size=5, attn=True,
                     attn_pre=True, window_size=7),
    )

    def __init__(self, channels: int, exp_ratio: float, operator: str = 'ew_mhsa',
                 **kwargs):
        if operator not in self.OPERATORS:
            raise ValueError(f'MetaMobileBlock: unknown operator {operator!r}; '
                             f'choose from {sorted(self.OPERATORS)}')
        self.operator = operator
        super().__init__(channels, channels, exp_ratio,
                         **{**self.OPERATORS[operator], **kwargs})
