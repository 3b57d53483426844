"""Images that cannot be read are errors that name the file.

mmcv 2.1.0's ``LoadImageFromFile`` (used by mmpretrain, mmdet and mmseg pipelines) says
``failed to load image: PATH`` through an ``assert`` when cv2 cannot decode a file, and
with ``imdecode_backend='pillow'`` (or a 0-byte file under cv2) it lets the decoder's
error through, which names no file (``cannot identify image file <_io.BytesIO ...>``,
``!buf.empty()``). :func:`named_errors` wraps its ``transform`` so that every failure
raises :class:`ImageLoadError` naming the file, its size and the decoder's message.
``ignore_empty=True`` keeps its meaning (the sample is skipped).

16-bit PNGs: with ``imdecode_backend='pillow'`` mmcv converts Pillow's 16-bit modes
(``I;16``, ``I``) with ``convert('RGB')``, which clips every value above 255: the image
comes out white. :func:`scale_16bit` wraps mmcv's ``_pillow2array`` so that they are
scaled to 8 bits first (``>> 8``, what cv2 does), for the ``color`` and ``grayscale``
flags; ``unchanged`` (label maps) keeps the 16-bit values.

Both wrappers are installed by :mod:`emo.patches` at ``import emo``.
"""
import os.path as osp

import numpy as np
from PIL import Image


class ImageLoadError(ValueError):
    """An image file of a data set that cannot be decoded; the message names it."""


def _describe(path):
    try:
        size = osp.getsize(path)
    except OSError:
        return 'it cannot be read'
    return 'it is empty (0 bytes)' if size == 0 else f'{size} bytes, not a decodable image'


def named_errors(transform):
    """``LoadImageFromFile.transform`` whose failures are :class:`ImageLoadError`."""

    def wrapped(self, results):
        try:
            out = transform(self, results)
        except ImageLoadError:
            raise
        except (Exception, AssertionError) as e:  # noqa: B014
            path = results.get('img_path')
            raise ImageLoadError(
                f'{path}: cannot load the image ({_describe(path)}; backend '
                f'{self.imdecode_backend}: {type(e).__name__}: {e})') from e
        return out

    wrapped.__wrapped__ = transform
    wrapped.__doc__ = transform.__doc__
    return wrapped


def scale_16bit(pillow2array):
    """mmcv's ``_pillow2array`` that scales 16-bit images to 8 bits (unless
    ``flag='unchanged'``) instead of clipping them."""

    def wrapped(img, flag='color', channel_order='bgr'):
        if flag != 'unchanged' and img.mode in ('I;16', 'I;16L', 'I;16B', 'I'):
            value = np.asarray(img).astype(np.int64) >> 8
            img = Image.fromarray(value.clip(0, 255).astype(np.uint8), mode='L')
        return pillow2array(img, flag, channel_order)

    wrapped.__wrapped__ = pillow2array
    return wrapped
