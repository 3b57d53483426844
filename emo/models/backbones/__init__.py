from .emo import EMO
from .emo2 import EMOv2

__all__ = ['EMO', 'EMOv2']
