"""EMO backbone (Zhang et al., "Rethinking Mobile Block for Efficient Attention-based
Models", ICCV 2023), one implementation for mmpretrain, mmdet and mmseg."""
import math
from typing import Sequence, Tuple, Union

import torch
import torch.nn as nn
from mmcv.cnn import fuse_conv_bn
from mmengine.model import BaseModule
from mmengine.registry import MODELS
from torch.nn.modules.batchnorm import _BatchNorm

from ..utils.state_dict import load_backbone_checkpoint
from ..utils.irmb import BN, LN, build_norm, iRMB


class ConvStem(nn.Module):
    """3x3 stride-2 conv (with bias) + BN: (B, 3, H, W) -> (B, C, H/2, W/2).

    Stored as ``convs.0.{0,1}`` like the official multi-scale patch embedding."""

    def __init__(self, in_channels, out_channels, norm_cfg=BN):
        super().__init__()
        self.convs = nn.ModuleList([nn.Sequential(
            nn.Conv2d(in_channels, out_channels, 3, 2, 1, bias=True),
            build_norm(norm_cfg, out_channels))])

    def forward(self, x):
        return self.convs[0](x)


@MODELS.register_module()
class EMO(BaseModule):
    """EMO backbone: (B, 3, H, W) -> tuple of maps at ``out_indices``.

    Index 0 is the stem (``stage0``, stride 2, 24 channels), indices 1..4 the outputs of
    stages 1..4 (strides 4, 8, 16, 32; channels = ``arch['widths']``). Odd sizes are fine:
    every stride-2 layer gives ceil(H / 2).

    Args:
        arch (str | dict): '1m', '2m', '5m', '6m' or a dict with the keys of
            ``arch_settings`` (depths, widths, exp_ratios, dim_heads, drop_path_rate;
            optional: stem_width, norms, acts, dw_kernels, attn_stages).
        in_channels (int): input channels. Default 3.
        out_indices (Sequence[int] | int): outputs to return, from 0..4. Default (4,).
        frozen_stages (int): stem (0) up to stage ``frozen_stages`` are frozen
            (eval mode, no gradients); -1 freezes nothing.
        norm_eval (bool): keep every BatchNorm in eval mode while training.
        window_size (int | Sequence[int]): attention window, one for all stages or one
            per stage 1..4; <= 0 is global attention. Default 7.
        drop_path_rate (float | None): stochastic depth; None takes the arch's rate.
        attn_pre (bool): attention before the value expansion (the released order).
        final_norm (bool): LayerNorm after stage 4 (applied to output 4), as the
            classifier has it; the downstream networks have none. Default True.
        channels_last (bool): run in the channels_last memory format (the input and
            the conv weights); same outputs, faster on CPUs and on tensor cores.
        deploy (bool): build the re-parameterized inference form that
            :meth:`switch_to_deploy` produces (BatchNorms folded into the convs), to
            load a checkpoint written by tools/model_converters/reparameterize_model.py.
        init_cfg (dict | list | None): e.g. ``dict(type='Pretrained', checkpoint=...)``;
            an official EMO file, an mmpretrain EMO classifier checkpoint, or a backbone
            state_dict. Missing / unexpected keys are reported by name, a file that
            fits nothing raises; ``strict=True`` in the init_cfg makes any missing or
            unexpected key an error.
    """

    arch_settings = {
        '1m': dict(depths=[2, 2, 8, 3], widths=[32, 48, 80, 168],
                   exp_ratios=[2.0, 2.5, 3.0, 3.5], dim_heads=[None, None, 20, 21],
                   drop_path_rate=0.04036),
        '2m': dict(depths=[3, 3, 9, 3], widths=[32, 48, 120, 200],
                   exp_ratios=[2.0, 2.5, 3.0, 3.5], dim_heads=[None, None, 20, 20],
                   drop_path_rate=0.05),
        '5m': dict(depths=[3, 3, 9, 3], widths=[48, 72, 160, 288],
                   exp_ratios=[2.0, 3.0, 4.0, 4.0], dim_heads=[None, None, 32, 32],
                   drop_path_rate=0.05),
        '6m': dict(depths=[3, 3, 9, 3], widths=[48, 72, 160, 320],
                   exp_ratios=[2.0, 3.0, 4.0, 5.0], dim_heads=[None, None, 20, 32],
                   drop_path_rate=0.05),
    }
    # Shared by all released variants.
    default_arch = dict(stem_width=24, norms=[BN, BN, LN, LN],
                        acts=[dict(type='SiLU')] * 2 + [dict(type='GELU')] * 2,
                        dw_kernels=[3, 3, 5, 5], attn_stages=[False, False, True, True])
    num_stages = 4
    #: stride of each output index 0..4 (stem, stages 1..4)
    strides = (2, 4, 8, 16, 32)

    def __init__(self,
                 arch: Union[str, dict] = '5m',
                 in_channels: int = 3,
                 out_indices: Union[int, Sequence[int]] = (4, ),
                 frozen_stages: int = -1,
                 norm_eval: bool = False,
                 window_size: Union[int, Sequence[int]] = 7,
                 drop_path_rate: float = None,
                 attn_pre: bool = True,
                 final_norm: bool = True,
                 channels_last: bool = False,
                 deploy: bool = False,
                 init_cfg=None):
        super().__init__(init_cfg=init_cfg)
        self._set_options(arch, out_indices, frozen_stages, norm_eval, window_size)
        arch = self.arch
        stem = arch['stem_width']
        self.stage0 = nn.ModuleList([
            ConvStem(in_channels, stem, arch['norms'][0]),
            iRMB(stem, stem, 1.0, norm_cfg=None, act_cfg=arch['acts'][0], has_skip=False,
                 v_proj=False, dw_kernel_size=arch['dw_kernels'][0], se_ratio=1.0),
        ])

        def block(i, in_ch, first, drop_path):
            return iRMB(
                in_ch, arch['widths'][i], exp_ratio=arch['exp_ratios'][i] * (2 if first else 1),
                norm_cfg=arch['norms'][i], act_cfg=arch['acts'][i], stride=2 if first else 1,
                dw_kernel_size=arch['dw_kernels'][i], has_skip=not first,
                attn=arch['attn_stages'][i] and not first, dim_head=arch['dim_heads'][i],
                window_size=self.window_size[i], attn_pre=attn_pre, qkv_bias=True,
                drop_path=drop_path)

        self._build_stages(stem, block, drop_path_rate, final_norm)
        self._finish_init(deploy, channels_last)

    def _build_stages(self, stem_width, block, drop_path_rate, final_norm):
        """Stages 1..4 (``stage1`` ...), ``out_channels`` and the final norm, in the
        layout every EMO-family backbone shares: stage i has ``depths[i]`` blocks
        ``block(i, in_channels, first, drop_path)`` (the first one strides by 2 and
        widens to ``widths[i]``), the stochastic depth rising linearly from 0 to
        ``drop_path_rate`` (None: the arch's) over all blocks."""
        arch = self.arch
        if drop_path_rate is None:
            drop_path_rate = arch['drop_path_rate']
        dprs = iter(torch.linspace(0, drop_path_rate, sum(arch['depths'])).tolist())
        in_ch = stem_width
        for i in range(self.num_stages):
            blocks = []
            for j in range(arch['depths'][i]):
                blocks.append(block(i, in_ch, j == 0, next(dprs)))
                in_ch = arch['widths'][i]
            self.add_module(f'stage{i + 1}', nn.ModuleList(blocks))
        self.out_channels = [stem_width] + list(arch['widths'])
        self.final_norm = final_norm
        if final_norm:
            self.norm = build_norm(arch['norms'][-1], arch['widths'][-1])

    def _set_options(self, arch, out_indices, frozen_stages, norm_eval, window_size):
        """Parse and check the arguments every EMO-family backbone shares."""
        name = type(self).__name__
        self.arch = self._parse_arch(arch)
        if isinstance(out_indices, int):
            out_indices = (out_indices, )
        out_indices = tuple(i + 5 if i < 0 else i for i in out_indices)
        if not out_indices or any(i not in range(5) for i in out_indices):
            raise ValueError(f'{name}: out_indices must be in 0..4, got {out_indices}')
        self.out_indices = out_indices
        if frozen_stages not in range(-1, 5):
            raise ValueError(f'{name}: frozen_stages must be in -1..4, got {frozen_stages}')
        self.frozen_stages = frozen_stages
        self.norm_eval = norm_eval
        if isinstance(window_size, int):
            window_size = [window_size] * self.num_stages
        if len(window_size) != self.num_stages:
            raise ValueError(f'{name}: window_size needs one int or {self.num_stages} '
                             f'(one per stage), got {window_size}')
        self.window_size = list(window_size)

    def _finish_init(self, deploy, channels_last):
        self._freeze_stages()
        self.deploy = False
        if deploy:
            self.switch_to_deploy()
        self.channels_last = channels_last
        if channels_last:
            self.to(memory_format=torch.channels_last)

    @torch.no_grad()
    def switch_to_deploy(self):
        """Re-parameterize for inference, in place (mmpretrain's RepVGG / MobileOne
        convention): the stem BN and every BN after a depthwise conv are folded into
        their convs, the BN pre-norms of stages 1-2 into the following 1x1 ``v`` conv
        (see :meth:`iRMB.switch_to_deploy`). Eval-mode outputs are unchanged; a
        re-parameterized backbone is for inference (its BN statistics are gone).

        Every block with a ``switch_to_deploy`` switches; in any other module of a
        stage (the stem's convs) each BatchNorm after a conv is folded into it."""
        if self.deploy:
            return
        for stage in self.stages():
            for block in stage:
                if hasattr(block, 'switch_to_deploy'):
                    block.switch_to_deploy()
                else:
                    fuse_conv_bn(block)
        if getattr(self, 'channels_last', False):
            self.to(memory_format=torch.channels_last)
        self.deploy = True

    def attention_stages(self) -> Tuple[int, ...]:
        """The stages (1..4) whose blocks attend: (3, 4) for the released variants."""
        return tuple(i + 1 for i, a in enumerate(self.arch['attn_stages']) if a)

    @property
    def size_divisor(self) -> int:
        """The input multiple at which no map is padded: every stride-2 layer halves
        exactly and every attention stage tiles into whole windows (224 for the released
        variants: 16 * 7 and 32 * 7). Other sizes work too; they pay for padding."""
        divisor = self.strides[-1]
        for i in self.attention_stages():
            if self.window_size[i - 1] > 0:
                divisor = math.lcm(divisor, self.strides[i] * self.window_size[i - 1])
        return divisor

    def feature_shapes(self, shape) -> Tuple[Tuple[int, int], ...]:
        """(h, w) of the outputs 0..4 for an input of size ``shape`` (H, W): every
        stride-2 layer gives ceil(n / 2)."""
        h, w = (int(s) for s in shape)
        return tuple((-(-h // s), -(-w // s)) for s in self.strides)

    @classmethod
    def _parse_arch(cls, arch):
        name = cls.__name__
        if isinstance(arch, str):
            if arch.lower() not in cls.arch_settings:
                raise KeyError(f'{name}: unknown arch {arch!r}; choose from '
                               f'{sorted(cls.arch_settings)} or give a dict')
            arch = cls.arch_settings[arch.lower()]
        if not isinstance(arch, dict):
            raise TypeError(f'{name}: arch must be a str or dict, got {type(arch)}')
        required = {'depths', 'widths', 'exp_ratios', 'dim_heads'}
        missing = required - set(arch)
        if missing:
            raise KeyError(f'{name}: custom arch misses {sorted(missing)}')
        arch = {**cls.default_arch, 'drop_path_rate': 0.0, **arch}
        unknown = set(arch) - set(cls.default_arch) - required - {'drop_path_rate'}
        if unknown:
            raise KeyError(f'{name}: custom arch has unknown keys {sorted(unknown)}')
        per_stage = [k for k, v in cls.default_arch.items() if isinstance(v, list)]
        for key in sorted(required) + per_stage:
            if len(arch[key]) != cls.num_stages:
                raise ValueError(f'{name}: arch[{key!r}] needs {cls.num_stages} entries, '
                                 f'got {arch[key]}')
        return arch

    def stages(self):
        return [getattr(self, f'stage{i}') for i in range(self.num_stages + 1)]

    def init_weights(self):
        """The official initialisation is PyTorch's default for convs and norms (the
        only Linear, the classifier head, is the head's own); ``Pretrained`` loads a file
        through :func:`load_backbone_checkpoint`, which reports every key."""
        cfg = self.init_cfg
        if isinstance(cfg, dict) and cfg.get('type') == 'Pretrained':
            load_backbone_checkpoint(self, cfg['checkpoint'], prefix=cfg.get('prefix'),
                                     map_location=cfg.get('map_location', 'cpu'),
                                     strict=cfg.get('strict', False))
            self._is_init = True
        else:
            super().init_weights()

    def _freeze_stages(self):
        for stage in self.stages()[:self.frozen_stages + 1]:
            stage.eval()
            for p in stage.parameters():
                p.requires_grad = False

    def train(self, mode=True):
        super().train(mode)
        self._freeze_stages()
        if mode and self.norm_eval:
            for m in self.modules():
                if isinstance(m, _BatchNorm):
                    m.eval()
        return self

    def forward(self, x):
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        outs = []
        for i, stage in enumerate(self.stages()):
            for block in stage:
                x = block(x)
            if i in self.out_indices:
                outs.append(self.norm(x) if i == 4 and self.final_norm else x)
        return tuple(outs)
