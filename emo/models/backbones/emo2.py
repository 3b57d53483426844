"""EMOv2 backbone (Zhang et al., "EMOv2: Pushing 5M Vision Model Frontier", arXiv
2412.06674, TPAMI 2025), one implementation for mmpretrain, mmdet and mmseg.

The second family of the package: the EMO layout (stem, four stages whose first block
strides by 2, attention in stages 3-4) built from the i²RMB
(:class:`~emo.models.utils.i2rmb.iiRMB`). It shares EMO's options, geometry, freezing
and loud checkpoint loading (it subclasses :class:`~emo.models.backbones.emo.EMO`).
"""
from typing import Optional, Sequence, Union

import torch.nn as nn
from mmengine.model import BaseModule
from mmengine.registry import MODELS

from ..utils.i2rmb import iiRMB
from ..utils.irmb import BN, LN, ConvNormAct
from .emo import EMO


@MODELS.register_module()
class EMOv2(EMO):
    """EMOv2 backbone: (B, 3, H, W) -> tuple of maps at ``out_indices``.

    Index 0 is the stem (``stage0``, stride 2, ``widths[0] // 2`` channels), indices
    1..4 the outputs of stages 1..4 (strides 4, 8, 16, 32; channels = ``arch['widths']``).
    Every stride-2 layer gives ceil(H / 2), so odd sizes are fine.

    The stem is three ConvNormActs: 3x3 stride-2 conv (bias) + BN + SiLU, 3x3 depthwise
    + BN + SiLU, 1x1 (no norm, no act). Stage i's first block strides by 2 with a 1x1
    expansion of ``2 * exp_ratios[i]`` and no skip; its other blocks expand by
    ``exp_ratios[i]`` with a 1x1 conv (stages 1-2) or with the hybrid window attention
    (stages 3-4). Every DW-Conv is 5x5.

    Args:
        arch (str | dict): '1m', '2m', '5m', '20m' or a dict with the keys of
            ``arch_settings`` (depths, widths, exp_ratios, dim_heads, drop_path_rate;
            optional: norms, acts, dw_kernels, attn_stages).
        in_channels (int): input channels. Default 3.
        out_indices (Sequence[int] | int): outputs to return, from 0..4. Default (4,).
        frozen_stages (int): stem (0) up to stage ``frozen_stages`` are frozen.
        norm_eval (bool): keep every BatchNorm in eval mode while training.
        window_size (int | Sequence[int]): attention window, one for all stages or one
            per stage; the official settings: 7 at 224, 8 at 256 and 512
            (``WINDOW_SIZES``), 10 in the released detectors and segmentors.
        windows (Sequence[str]): window layouts the attention sums ('strided' of EMO,
            'contiguous'); both in EMOv2.
        drop_path_rate (float | None): stochastic depth; None takes the arch's rate.
        layer_scale (float): initial LayerScale of every block (1e-6); 0 for none.
        dw_norm_cfg / dw_act_cfg (dict): norm / act after every DW-Conv of stages 1-4:
            BN + SiLU (every published run); the official repository's current
            segmentation backbone has ``dict(type='LN')`` + GELU there (the classifier
            files' BNs then do not load into them).
        final_norm (bool): LayerNorm after stage 4 (the classifier's). Default True.
        channels_last (bool): run in the channels_last memory format.
        deploy (bool): build the re-parameterized form :meth:`switch_to_deploy` gives.
        init_cfg (dict | list | None): e.g. ``dict(type='Pretrained', checkpoint=...)``:
            an official EMOv2 file (``EMOv2_5M_224.pth`` ...), an mmpretrain EMOv2
            classifier checkpoint or a backbone state_dict, loaded and reported by name
            (:func:`~emo.models.utils.state_dict.load_backbone_checkpoint`).
    """

    arch_settings = {
        '1m': dict(depths=[2, 2, 8, 3], widths=[32, 48, 80, 180],
                   exp_ratios=[2.0, 2.5, 3.0, 3.5], dim_heads=[None, None, 20, 20],
                   drop_path_rate=0.04036),
        '2m': dict(depths=[3, 3, 9, 3], widths=[32, 48, 120, 200],
                   exp_ratios=[2.0, 2.5, 3.0, 3.5], dim_heads=[None, None, 20, 20],
                   drop_path_rate=0.05),
        '5m': dict(depths=[3, 3, 9, 3], widths=[48, 72, 160, 288],
                   exp_ratios=[2.0, 3.0, 4.0, 4.0], dim_heads=[None, None, 32, 32],
                   drop_path_rate=0.05),
        '20m': dict(depths=[3, 3, 13, 3], widths=[64, 128, 320, 448],
                    exp_ratios=[2.0, 3.0, 4.0, 4.0], dim_heads=[None, None, 32, 32],
                    drop_path_rate=0.1),
    }
    # Shared by all released variants.
    default_arch = dict(norms=[BN, BN, LN, LN],
                        acts=[dict(type='SiLU')] * 2 + [dict(type='GELU')] * 2,
                        dw_kernels=[5, 5, 5, 5], attn_stages=[False, False, True, True])
    #: window size of the official factories per input resolution
    WINDOW_SIZES = {224: 7, 256: 8, 512: 8}

    def __init__(self,
                 arch: Union[str, dict] = '5m',
                 in_channels: int = 3,
                 out_indices: Union[int, Sequence[int]] = (4, ),
                 frozen_stages: int = -1,
                 norm_eval: bool = False,
                 window_size: Union[int, Sequence[int]] = 7,
                 windows: Sequence[str] = ('strided', 'contiguous'),
                 drop_path_rate: Optional[float] = None,
                 layer_scale: float = 1e-6,
                 dw_norm_cfg: dict = BN,
                 dw_act_cfg: dict = dict(type='SiLU'),
                 final_norm: bool = True,
                 channels_last: bool = False,
                 deploy: bool = False,
                 init_cfg=None):
        BaseModule.__init__(self, init_cfg=init_cfg)
        self._set_options(arch, out_indices, frozen_stages, norm_eval, window_size)
        arch = self.arch
        stem = arch['widths'][0] // 2
        silu = dict(type='SiLU')
        self.stage0 = nn.ModuleList([
            ConvNormAct(in_channels, stem, 3, 2, bias=True, norm_cfg=BN, act_cfg=silu),
            ConvNormAct(stem, stem, 3, groups=stem, norm_cfg=BN, act_cfg=silu),
            ConvNormAct(stem, stem, 1),
        ])

        def block(i, in_ch, first, drop_path):
            attn = arch['attn_stages'][i] and not first
            return iiRMB(
                in_ch, arch['widths'][i], exp_ratio=arch['exp_ratios'][i] * (2 if first else 1),
                norm_cfg=arch['norms'][i], act_cfg=arch['acts'][i],
                operator='attn' if attn else 'conv', stride=2 if first else 1,
                dw_kernel_size=arch['dw_kernels'][i], dw_norm_cfg=dw_norm_cfg,
                dw_act_cfg=dw_act_cfg, has_skip=not first,
                dim_head=arch['dim_heads'][i] if attn else 1, window_size=self.window_size[i],
                windows=windows, qkv_bias=True, layer_scale=layer_scale, drop_path=drop_path)

        self._build_stages(stem, block, drop_path_rate, final_norm)
        self._finish_init(deploy, channels_last)

    def switch_to_deploy(self):
        """Re-parameterize for inference, in place (:meth:`EMO.switch_to_deploy`): the
        stem's BatchNorms and every DW-Conv's are folded into their convs, every
        LayerScale into its ``proj``, the pre-norms of the 1x1-expansion blocks into the
        expansion (see :meth:`iiRMB.switch_to_deploy`). Eval-mode outputs are unchanged."""
        super().switch_to_deploy()
