from .checkpoint import (load_backbone_checkpoint, official_to_mmpretrain,
                         unwrap_state_dict)
from .irmb import LayerNorm2d, MetaMobileBlock, iRMB

__all__ = ['iRMB', 'MetaMobileBlock', 'LayerNorm2d', 'load_backbone_checkpoint',
           'official_to_mmpretrain', 'unwrap_state_dict']
