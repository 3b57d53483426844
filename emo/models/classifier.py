"""``EMOClassifier``: the EMO backbone with its ImageNet head, in timm's model interface.

The same network as mmpretrain's EMO ``ImageClassifier`` (backbone, global average
pooling, linear head) and the same module: a subclass of :class:`~emo.models.EMO`
whose state dict is the official release's, key for key (``stage0.*`` ... ``stage4.*``,
``norm.*``, ``head.*``), so ``EMO_1M/net.pth`` loads into it as it is. timm builds it
(:mod:`emo.timm`: ``timm.create_model('emo_1m', ...)``) and wraps it for
``features_only=True`` through :meth:`forward_intermediates` (timm's feature getter).
"""
from typing import List, Optional, Tuple, Union

import torch
import torch.nn as nn
import torch.nn.functional as F

from .backbones.emo import EMO

__all__ = ['EMOClassifier']


def _take_indices(num, indices):
    """timm's rule: None -> all, int n -> the last n, a sequence -> those (negative from
    the end). Returns (sorted indices, largest)."""
    if indices is None:
        indices = num
    if isinstance(indices, int):
        if not 0 < indices <= num:
            raise ValueError(f'EMO: last-n ({indices}) is out of range 1..{num}')
        take = list(range(num - indices, num))
    else:
        take = sorted(i + num if i < 0 else i for i in indices)
        if any(i not in range(num) for i in take):
            raise ValueError(f'EMO: feature indices must be in 0..{num - 1}, got {indices}')
    return take, max(take)


class EMOClassifier(EMO):
    """EMO + global average pooling + dropout + a linear head (timm's interface).

    Args:
        arch (str | dict): as :class:`EMO` ('1m', '2m', '5m', '6m').
        num_classes (int): head outputs; 0 gives no head (pooled features).
        in_chans (int): input channels.
        drop_rate (float): dropout before the head (the release: 0).
        global_pool (str): 'avg' or '' (no pooling: ``forward_head`` gets the map).
        **kwargs: the other options of :class:`EMO` (window_size, drop_path_rate,
            channels_last, ...).
    """

    def __init__(self, arch='1m', num_classes=1000, in_chans=3, drop_rate=0.0,
                 global_pool='avg', **kwargs):
        kwargs.update(in_channels=in_chans, out_indices=(4, ), final_norm=True)
        super().__init__(arch=arch, **kwargs)
        self.num_classes = num_classes
        self.num_features = self.head_hidden_size = self.out_channels[-1]
        self.drop_rate = drop_rate
        self.global_pool = global_pool
        self.head = nn.Linear(self.num_features, num_classes) if num_classes else \
            nn.Identity()
        self.feature_info = [
            dict(num_chs=c, reduction=s, module=f'stage{i}')
            for i, (c, s) in enumerate(zip(self.out_channels, self.strides))]

    def get_classifier(self) -> nn.Module:
        return self.head

    def reset_classifier(self, num_classes: int, global_pool: Optional[str] = None):
        if global_pool is not None:
            self.global_pool = global_pool
        self.num_classes = num_classes
        self.head = nn.Linear(self.num_features, num_classes) if num_classes else \
            nn.Identity()

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) -> the last stage's map after the final norm."""
        return super().forward(x)[0]

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        if self.global_pool == 'avg':
            x = F.adaptive_avg_pool2d(x, 1).flatten(1)  # as mmpretrain's GAP neck
        x = F.dropout(x, p=self.drop_rate, training=self.training)
        return x if pre_logits else self.head(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))

    def forward_intermediates(
            self, x: torch.Tensor, indices: Optional[Union[int, List[int]]] = None,
            norm: bool = False, stop_early: bool = False, output_fmt: str = 'NCHW',
            intermediates_only: bool = False
    ) -> Union[List[torch.Tensor], Tuple[torch.Tensor, List[torch.Tensor]]]:
        """The outputs of stem and stages (indices 0..4, EMO's ``out_indices``); with
        ``norm`` index 4 after the final norm. Not ``intermediates_only``: also the
        final features (as :meth:`forward_features`)."""
        if output_fmt != 'NCHW':
            raise ValueError(f"EMO: output_fmt must be 'NCHW', got {output_fmt!r}")
        take, last = _take_indices(len(self.strides), indices)
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        intermediates = []
        stages = self.stages()
        for i, stage in enumerate(stages[:last + 1] if stop_early or intermediates_only
                                  else stages):
            for block in stage:
                x = block(x)
            if i in take:
                intermediates.append(self.norm(x) if i == 4 and norm and self.final_norm
                                     else x)
        if intermediates_only:
            return intermediates
        return self.norm(x) if self.final_norm else x, intermediates

    def prune_intermediate_layers(self, indices: Union[int, List[int]] = 1,
                                  prune_norm: bool = False, prune_head: bool = True):
        """Drop what the outputs ``indices`` do not need (later stages, the final norm,
        the head); returns the indices."""
        take, last = _take_indices(len(self.strides), indices)
        for i in range(last + 1, len(self.strides)):
            setattr(self, f'stage{i}', nn.ModuleList())
        if prune_norm or last < 4:
            self.norm, self.final_norm = nn.Identity(), False
        if prune_head:
            self.reset_classifier(0, '')
        return take
