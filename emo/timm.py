"""EMO in timm: ``timm.create_model('emo_1m' | 'emo_2m' | 'emo_5m' | 'emo_6m', ...)``.

Registered when timm is imported after ``import emo`` (or by ``import emo.timm``); the
network is imported when a model is created. Each model is
:class:`emo.models.classifier.EMOClassifier`, a subclass of the EMO backbone with the
official state-dict layout, so ``pretrained=True`` loads the official file as it is.

``pretrained_cfg`` comes from the released recipe (the official repository's test
transform and emo's ImageNet configs): 224x224, resize the short side to 256 (crop_pct
0.875), bicubic, ImageNet mean / std; ``url`` is the metafile's official file
(``configs/classification/metafile.yml``). The download goes through
:func:`emo.apis.hub.load_from_http` (mmengine's cache, a file name per URL: the four
official files are all ``net.pth``, which timm's own cache would mix up; the safe loader;
a named error when offline); timm then drops the head for another ``num_classes`` and
adapts ``in_chans`` as for its own models. ``pretrained_cfg_overlay=dict(file=PATH)``
loads a local copy. ``features_only=True`` (``out_indices`` from 0..4: the stem and the
four stages, strides 2..32) uses :meth:`EMOClassifier.forward_intermediates`.
"""
from timm.data import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD
from timm.models import build_model_with_cfg, generate_default_cfgs, register_model

__all__ = ['VARIANTS', 'default_cfgs', 'OFFICIAL_COMMIT']

OFFICIAL_COMMIT = '27d9b40fea9c2a12a2fe7acc51032184852a99d8'
VARIANTS = ('1m', '2m', '5m', '6m')


def _url(arch):
    return (f'https://raw.githubusercontent.com/zhangzjn/EMO/{OFFICIAL_COMMIT}/resources/'
            f'EMO_{arch.upper()}/net.pth')


def _cfg(arch):
    return dict(
        url=_url(arch), num_classes=1000, input_size=(3, 224, 224), pool_size=(7, 7),
        crop_pct=0.875, crop_mode='center', interpolation='bicubic',
        mean=IMAGENET_DEFAULT_MEAN, std=IMAGENET_DEFAULT_STD,
        first_conv='stage0.0.convs.0.0', classifier='head', paper_ids='arXiv:2301.01146',
        paper_name='Rethinking Mobile Block for Efficient Attention-based Models',
        origin_url='https://github.com/zhangzjn/EMO')


default_cfgs = generate_default_cfgs({f'emo_{a}.in1k': _cfg(a) for a in VARIANTS})


def _official_state_dict(url):
    from emo.apis.hub import load_from_http
    from emo.models.utils.state_dict import unwrap_official_trainer, unwrap_state_dict
    checkpoint = load_from_http(url, map_location='cpu')
    unwrap_official_trainer(checkpoint, url)
    return dict(unwrap_state_dict(checkpoint))


def _create(arch, pretrained=False, **kwargs):
    from emo.models.classifier import EMOClassifier
    variant = f'emo_{arch}'
    if pretrained:
        overlay = dict(kwargs.pop('pretrained_cfg_overlay', None) or {})
        cfg = dict(default_cfgs[variant].default.to_dict(), **overlay)
        if not (overlay.get('file') or overlay.get('state_dict') is not None):
            overlay['state_dict'] = _official_state_dict(cfg['url'])
        kwargs['pretrained_cfg_overlay'] = overlay
    kwargs.setdefault('feature_cfg', dict(feature_cls='getter'))
    return build_model_with_cfg(EMOClassifier, variant, pretrained, arch=arch, **kwargs)


@register_model
def emo_1m(pretrained=False, **kwargs):
    """EMO-1M (1.3M params, 71.5 top-1 on ImageNet-1K at 224)."""
    return _create('1m', pretrained, **kwargs)


@register_model
def emo_2m(pretrained=False, **kwargs):
    """EMO-2M (2.3M params, 75.1 top-1 on ImageNet-1K at 224)."""
    return _create('2m', pretrained, **kwargs)


@register_model
def emo_5m(pretrained=False, **kwargs):
    """EMO-5M (5.1M params, 78.4 top-1 on ImageNet-1K at 224)."""
    return _create('5m', pretrained, **kwargs)


@register_model
def emo_6m(pretrained=False, **kwargs):
    """EMO-6M (6.1M params, 79.0 top-1 on ImageNet-1K at 224)."""
    return _create('6m', pretrained, **kwargs)
