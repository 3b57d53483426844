from .emo import EMO

__all__ = ['EMO']
