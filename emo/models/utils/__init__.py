from .i2rmb import HybridWindowAttention, LayerScale2d, iiRMB
from .irmb import LayerNorm2d, MetaMobileBlock, iRMB
from .state_dict import (check_fit, fit_checkpoint, is_official_layout,
                         load_backbone_checkpoint, official_to_mmpretrain,
                         unwrap_state_dict)

__all__ = ['iRMB', 'MetaMobileBlock', 'LayerNorm2d', 'iiRMB', 'HybridWindowAttention',
           'LayerScale2d', 'load_backbone_checkpoint',
           'official_to_mmpretrain', 'unwrap_state_dict', 'is_official_layout',
           'check_fit', 'fit_checkpoint']
