"""The improved inverted residual mobile block (i²RMB) of EMOv2.

EMOv2 (Zhang et al., "EMOv2: Pushing 5M Vision Model Frontier", arXiv 2412.06674) keeps
the one-residual Meta Mobile Block of EMO and changes its operator:

``x -> norm -> E (1x1 expand + act, or window attention over the expanded values) ->
DW-Conv (+ skip) -> proj (1x1) -> LayerScale -> + shortcut``.

The attention (the "hybrid" efficient operator) projects the values first and attends
both in EMO's strided-grid windows (long range) and in contiguous windows (local), with
the same q, k and v, and sums the two. Sub-module names follow the official code
(``norm``, ``eops.0.net`` / ``eops.0.qk`` / ``eops.0.v``, ``conv_local``, ``proj``,
``ls.gamma``) so the released checkpoints load without renaming. The norms,
:class:`ConvNormAct`, the padding and the window partitioning are EMO's
(:mod:`emo.models.utils.irmb`).
"""
from typing import Optional, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmcv.cnn import fuse_conv_bn
from mmcv.cnn.bricks import DropPath
from mmengine.registry import MODELS

from .irmb import (BN, ConvNormAct, MobileBlockBase, WindowAttentionMixin, fold_pre_norm,
                   pad_to_windows, window_partition, window_reverse)

#: the window layouts of the attention: EMO's strided grid and Swin-like tiles
WINDOW_LAYOUTS = ('strided', 'contiguous')


class LayerScale2d(nn.Module):
    """Per-channel scale of an NCHW map: x * gamma, gamma of shape (1, C, 1, 1)."""

    def __init__(self, channels: int, init_value: float = 1e-6):
        super().__init__()
        self.gamma = nn.Parameter(torch.full((1, channels, 1, 1), float(init_value)))

    def forward(self, x):
        return x * self.gamma


class PointwiseExpand(nn.Module):
    """The convolutional operator: 1x1 conv (with bias) + act, (B, C, H, W) ->
    (B, C_mid, H, W). Stored as ``net`` (the official name)."""

    def __init__(self, in_channels, mid_channels, bias=True, act_cfg=dict(type='SiLU')):
        super().__init__()
        self.net = ConvNormAct(in_channels, mid_channels, 1, bias=bias, act_cfg=act_cfg)

    def forward(self, x):
        return self.net(x)


class HybridWindowAttention(WindowAttentionMixin, nn.Module):
    """Window attention over expanded values: (B, C, H, W) -> (B, C_mid, H, W).

    ``q, k = qk(x)`` (1x1, ``C`` -> ``2C``, heads of ``dim_head`` channels) and
    ``v = act(v(x))`` (1x1, ``C`` -> ``C_mid``, split into the same number of heads) are
    computed on the zero-padded map (padded pixels are not masked: they carry the biases,
    as in the official code); softmax attention runs in every window of each layout of
    ``windows`` and the outputs are summed, then cropped to H x W. ``window_size <= 0``
    is one window over the whole map.
    """

    def __init__(self, in_channels, mid_channels, dim_head=32, window_size=7,
                 windows: Sequence[str] = WINDOW_LAYOUTS, qkv_bias=True,
                 act_cfg=dict(type='GELU'), attn_drop=0.0):
        super().__init__()
        windows = (windows, ) if isinstance(windows, str) else tuple(windows)
        if not windows or any(w not in WINDOW_LAYOUTS for w in windows):
            raise ValueError(f'i2RMB: windows must be a non-empty subset of '
                             f'{WINDOW_LAYOUTS}, got {windows}')
        self.windows = windows
        self._init_attention('i2RMB', in_channels, dim_head, window_size, qkv_bias,
                             attn_drop, mid_channels)
        self.v = ConvNormAct(in_channels, mid_channels, 1, bias=qkv_bias, act_cfg=act_cfg)

    def forward(self, x):
        H, W = x.shape[-2:]
        x, grid = pad_to_windows(x, self.window_size)
        qk_map, v_map = self.qk(x), self.v(x)  # (B, 2C, Hp, Wp), (B, C_mid, Hp, Wp)
        out = None
        for layout in self.windows:
            contiguous = layout == 'contiguous'
            o = self._attend(window_partition(qk_map, grid, contiguous),  # one copy each
                             window_partition(v_map, grid, contiguous))
            o = window_reverse(o, grid, contiguous)
            out = o if out is None else out + o
        return out[:, :, :H, :W]


@MODELS.register_module()
class iiRMB(MobileBlockBase):
    """Improved inverted residual mobile block (i²RMB): (B, C_in, H, W) ->
    (B, C_out, H/stride, W/stride).

    ``x -> norm -> operator (C_in -> C_mid = C_in * exp_ratio) -> DW-Conv (+ skip when
    the block has one) -> proj (1x1, no bias) -> LayerScale -> + shortcut``.

    Args:
        in_channels / out_channels (int): block widths.
        exp_ratio (float): expansion ratio of the operator. Default 1.0.
        norm_cfg (dict | None): the pre-norm (BN in stages 1-2, LN in 3-4).
        act_cfg (dict | None): activation of the 1x1 expansion / of the values.
        operator (str): ``'conv'`` (1x1 expand + act) or ``'attn'``
            (:class:`HybridWindowAttention`).
        stride (int): stride of the depthwise conv.
        dw_kernel_size (int): depthwise kernel (5 throughout EMOv2).
        dw_norm_cfg / dw_act_cfg: norm / act after the DW-Conv (BN + SiLU; the official
            segmentation backbones use LN + GELU).
        has_skip (bool): residual and local skip (used when widths match, stride 1).
        dim_head, window_size, windows, attn_drop: of the attention.
        qkv_bias (bool): bias of the 1x1 expansion, ``qk`` and ``v``.
        layer_scale (float): initial LayerScale; 0 for none.
        drop_path (float): stochastic depth on the residual branch.
        drop (float): dropout before ``proj``.

    :meth:`switch_to_deploy` folds the BatchNorm of the DW-Conv into it, the LayerScale
    into ``proj``, and the pre-norm's affine part into the 1x1 expansion of ``'conv'``
    blocks (not into the attention: padded pixels read the normalised map's zeros).
    """

    def __init__(self,
                 in_channels: int,
                 out_channels: int,
                 exp_ratio: float = 1.0,
                 norm_cfg: Optional[dict] = BN,
                 act_cfg: Optional[dict] = dict(type='SiLU'),
                 operator: str = 'conv',
                 stride: int = 1,
                 dw_kernel_size: int = 5,
                 dw_norm_cfg: Optional[dict] = BN,
                 dw_act_cfg: Optional[dict] = dict(type='SiLU'),
                 has_skip: bool = True,
                 dim_head: int = 32,
                 window_size: int = 7,
                 windows: Sequence[str] = WINDOW_LAYOUTS,
                 qkv_bias: bool = True,
                 layer_scale: float = 1e-6,
                 drop_path: float = 0.0,
                 attn_drop: float = 0.0,
                 drop: float = 0.0):
        super().__init__(in_channels, out_channels, exp_ratio, norm_cfg, stride, has_skip)
        mid_channels = self.mid_channels
        if operator == 'conv':
            op = PointwiseExpand(in_channels, mid_channels, qkv_bias, act_cfg)
        elif operator == 'attn':
            op = HybridWindowAttention(in_channels, mid_channels, dim_head, window_size,
                                       windows, qkv_bias, act_cfg, attn_drop)
        else:
            raise ValueError(f"i2RMB: operator must be 'conv' or 'attn', got {operator!r}")
        self.operator = operator
        self.eops = nn.ModuleList([op])
        if dw_kernel_size <= 0:
            raise ValueError(f'i2RMB: dw_kernel_size must be positive, got {dw_kernel_size}')
        self.conv_local = ConvNormAct(mid_channels, mid_channels, dw_kernel_size, stride,
                                      groups=mid_channels, norm_cfg=dw_norm_cfg,
                                      act_cfg=dw_act_cfg)
        self.proj_drop = nn.Dropout(drop)
        self.proj = ConvNormAct(mid_channels, out_channels, 1)
        self.ls = LayerScale2d(out_channels, layer_scale) if layer_scale > 0 else nn.Identity()
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()

    @property
    def window_size(self):
        return self.eops[0].window_size if self.operator == 'attn' else None

    @torch.no_grad()
    def switch_to_deploy(self):
        """Re-parameterize for inference, in place; eval-mode outputs are unchanged."""
        if self.deploy:
            return
        fuse_conv_bn(self.conv_local)
        if isinstance(self.ls, LayerScale2d):
            conv, gamma = self.proj.conv, self.ls.gamma.flatten()
            conv.weight.mul_(gamma.view(-1, 1, 1, 1))
            if conv.bias is not None:
                conv.bias.mul_(gamma)
            self.ls = nn.Identity()
        if self.operator == 'conv':
            self.norm = fold_pre_norm(self.norm, self.eops[0].net.conv)
        self.deploy = True

    def forward(self, x):
        shortcut = x
        x = self.eops[0](self.norm(x))  # one operator (the official list of summed ones)
        c = self.conv_local(x)
        x = x + c if self.has_skip else c
        x = self.ls(self.proj(self.proj_drop(x)))
        return shortcut + self.drop_path(x) if self.has_skip else x
