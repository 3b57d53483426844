"""What the paper's pictures read from an EMO network, by forward hooks on the network's
own modules (no second implementation of the network).

* :func:`block_features`: a block's features after the EW-MHSA branch, after the DW-Conv
  branch and at its output (the paper's feature-similarity figure);
* :func:`diagonal_similarity`: the cosine similarity of the pixels on a map's diagonal;
* :class:`AttentionRecorder`: the q and k that each attention block passes to
  ``F.scaled_dot_product_attention`` in its forward, and from them the attention weights
  of one pixel drawn on the map (:meth:`AttentionRecorder.pixel_weights`);
* :func:`window_mask`: the pixels of a pixel's strided-grid window (from the block's own
  ``pad_to_windows`` / ``window_partition``);
* :func:`effective_receptive_field`: the mean |gradient| of one output pixel of a stage
  with respect to the input; :func:`theoretical_support`: the input pixels that pixel can
  depend on at all, with or without the attention windows.

Blocks are named ``'<stage>.<index>'`` (``'3.2'``: block 2 of ``backbone.stage3``; index
0 is the stride-2 block of the stage, which never attends).
"""
from contextlib import contextmanager
from typing import Dict, Optional, Sequence, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.overrides import TorchFunctionMode

from ..models.backbones.emo import EMO, ConvStem
from ..models.utils.irmb import SqueezeExcite, iRMB, pad_to_windows, window_partition

__all__ = [
    'find_backbone', 'get_block', 'attention_blocks', 'block_features',
    'diagonal_similarity', 'AttentionRecorder', 'window_positions', 'window_mask',
    'effective_receptive_field', 'theoretical_support', 'fixed_se_gates',
    'without_attention'
]


def find_backbone(model: nn.Module) -> EMO:
    """The EMO backbone of a classifier / detector / segmentor (or ``model`` itself)."""
    backbone = model if isinstance(model, EMO) else getattr(model, 'backbone', None)
    if not isinstance(backbone, EMO):
        raise TypeError(f'expected a model with an EMO backbone (type=EMO), got '
                        f'{type(backbone or model).__name__}')
    return backbone


def get_block(backbone: EMO, name: str) -> iRMB:
    """The block ``'<stage>.<index>'`` (e.g. ``'3.2'``, negative indices count from the
    end of the stage) of ``backbone``; a clear error for names that do not exist."""
    try:
        stage, index = (int(p) for p in str(name).split('.'))
        blocks = [b for b in backbone.stages()[stage] if isinstance(b, iRMB)]
        if stage < 1:
            raise IndexError
        return blocks[index]
    except (ValueError, IndexError):
        depths = backbone.arch['depths']
        raise ValueError(
            f'no block {name!r}: give <stage>.<index>, stage 1..4, index 0..depth-1 '
            f'(depths of this backbone: {depths})') from None


def attention_blocks(backbone: EMO):
    """``{name: block}`` of the blocks with EW-MHSA, in forward order."""
    return {f'{s}.{j}': b for s, stage in enumerate(backbone.stages()) for j, b in
            enumerate(stage) if isinstance(b, iRMB) and b.attn and s > 0}


def _crop(x, size):
    return x[..., :size[0], :size[1]]


@torch.no_grad()
def block_features(model: nn.Module, block: iRMB, inputs: torch.Tensor,
                   forward=None) -> Dict[str, torch.Tensor]:
    """Run ``forward(inputs)`` (default: the backbone) once and return the features of
    ``block`` (each (B, C, h, w) at the block's resolution):

    * ``'attn'``: after the EW-MHSA branch, i.e. the attention output through the value
      expansion ``v`` (pointwise); for a block without attention, ``v`` of its normalised
      input (no pixel mixing at all);
    * ``'dwconv'``: the DW-Conv branch's output (BN and activation included, before the
      skip around it); absent for a block without DW-Conv;
    * ``'block'``: the block's output.
    """
    feats, size, handles = {}, {}, []

    def pre(_, args):
        size['in'] = args[0].shape[-2:]

    def keep(key):
        def hook(_, __, out):  # cloned: the block may update the tensor in place later
            feats[key] = out.detach().clone()
        return hook

    handles.append(block.register_forward_pre_hook(pre))
    handles.append(block.v.register_forward_hook(keep('attn')))
    if block.conv_local is not None:
        handles.append(block.conv_local.register_forward_hook(keep('dwconv')))
    handles.append(block.register_forward_hook(keep('block')))
    try:
        (forward or find_backbone(model))(inputs)
    finally:
        for h in handles:
            h.remove()
    # the training form runs v on the window-padded map
    feats['attn'] = _crop(feats['attn'], size['in'])
    return feats


def diagonal_similarity(feat: torch.Tensor) -> torch.Tensor:
    """Cosine similarity between the features of the pixels on the diagonal of a
    (C, h, w) map: (n, n), n = min(h, w); pixel i is (i, i) of a square map, else
    evenly spaced along the diagonal. Symmetric, with ones on the diagonal (a pixel
    whose feature is all zero has similarity 0 with the others and 1 with itself)."""
    c, h, w = feat.shape
    n = min(h, w)
    rows = torch.linspace(0, h - 1, n).round().long()
    cols = torch.linspace(0, w - 1, n).round().long()
    v = feat[:, rows, cols].T.double()  # (n, C)
    v = v / v.norm(dim=1, keepdim=True).clamp_min(1e-300)
    sim = v @ v.T
    sim = (sim + sim.T) / 2  # exactly symmetric
    sim.fill_diagonal_(1.0)
    return sim


def window_positions(block: iRMB, map_size: Tuple[int, int]):
    """(row, col) of every token of the strided-grid windows of ``block`` on an (h, w)
    map: (n1 * n2, N, 2) long, rows / cols >= h / w on the padding; from the block's
    own ``pad_to_windows`` and ``window_partition``."""
    _, grid = pad_to_windows(torch.empty(1, 1, *map_size), block.window_size)
    ws_h, ws_w, n1, n2 = grid
    coords = torch.stack(torch.meshgrid(torch.arange(ws_h * n1), torch.arange(ws_w * n2),
                                        indexing='ij'))[None].float()
    return window_partition(coords, grid).long()


def window_mask(block: iRMB, map_size: Tuple[int, int], pixel: Tuple[int, int]):
    """(h, w) bool mask of the map pixels in the strided-grid window of ``pixel``
    (padding excluded), and the window's size in tokens (padding included)."""
    pos = window_positions(block, map_size)
    win = ((pos[..., 0] == pixel[0]) & (pos[..., 1] == pixel[1])).any(1).nonzero()[0, 0]
    rows, cols = pos[win, :, 0], pos[win, :, 1]
    inside = (rows < map_size[0]) & (cols < map_size[1])
    mask = torch.zeros(map_size, dtype=torch.bool)
    mask[rows[inside], cols[inside]] = True
    return mask, pos.shape[1]


class _SDPA(TorchFunctionMode):
    """Records every ``F.scaled_dot_product_attention`` call (q, k, v, scale, output)
    made while ``self.block`` is set."""

    def __init__(self):
        super().__init__()
        self.block, self.calls = None, {}

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        if func is F.scaled_dot_product_attention and self.block is not None:
            q, k, v = args[:3]
            self.calls[self.block] = dict(q=q.detach(), k=k.detach(), v=v.detach(),
                                          scale=kwargs.get('scale'), out=out.detach())
        return out


class AttentionRecorder:
    """Context manager: the attention of every EW-MHSA block of ``backbone`` during the
    forward passes run inside it.

    ``with AttentionRecorder(backbone) as rec: backbone(x)``; then
    ``rec.weights(name)`` is the block's softmax(q k^T * scale) (windows, heads, N, N),
    computed from the q and k the block gave ``F.scaled_dot_product_attention`` (the
    block's own forward; nothing is re-implemented but that formula, which
    ``rec.calls[name]['out']`` checks: weights @ v is the call's output), and
    ``rec.pixel_weights(name, pixel)`` draws one pixel's weights on the map.
    """

    def __init__(self, backbone: EMO):
        self.backbone = find_backbone(backbone)
        self.blocks = attention_blocks(self.backbone)
        self.sizes, self._handles, self._mode = {}, [], None

    def __enter__(self):
        self._mode = _SDPA()
        for name, block in self.blocks.items():
            def pre(_, args, name=name):
                self.sizes[name] = tuple(args[0].shape[-2:])
                self._mode.block = name

            def post(*_):
                self._mode.block = None
            self._handles += [block.register_forward_pre_hook(pre),
                              block.register_forward_hook(post)]
        self._mode.__enter__()
        return self

    def __exit__(self, *exc):
        self._mode.__exit__(*exc)
        for h in self._handles:
            h.remove()
        self._handles = []

    @property
    def calls(self):
        return self._mode.calls

    def weights(self, name: str) -> torch.Tensor:
        """(B * n1 * n2, heads, N, N) attention weights of block ``name``."""
        if name not in self.calls:
            raise KeyError(f'block {name!r} has not attended; blocks with attention: '
                           f'{sorted(self.blocks)}')
        c = self.calls[name]
        scale = c['scale'] if c['scale'] is not None else c['q'].shape[-1]**-0.5
        return (c['q'] @ c['k'].transpose(-2, -1) * scale).softmax(-1)

    def pixel_weights(self, name: str, pixel: Tuple[int, int], image: int = 0):
        """The attention weights of ``pixel`` (row, col of the block's map) in image
        ``image``: ((heads, h, w) weights over the map pixels, (heads,) weight on the
        window's padding tokens). Per head, the map weights plus the padding weight sum
        to 1, and the map weights are nonzero only in the pixel's window."""
        block, (h, w) = self.blocks[name], self.sizes[name]
        if not (0 <= pixel[0] < h and 0 <= pixel[1] < w):
            raise ValueError(f'pixel {tuple(pixel)} is outside the {h}x{w} map of block '
                             f'{name}')
        pos = window_positions(block, (h, w))  # (n1*n2, N, 2): token -> (row, col)
        windows = pos.shape[0]
        win, tok = ((pos[..., 0] == pixel[0]) & (pos[..., 1] == pixel[1])).nonzero()[0]
        att = self.weights(name)[image * windows + win, :, tok]  # (heads, N)
        rows, cols = pos[win, :, 0], pos[win, :, 1]
        inside = (rows < h) & (cols < w)
        out = att.new_zeros(att.shape[0], h, w)
        out[:, rows[inside], cols[inside]] = att[:, inside]
        return out, att[:, ~inside].sum(-1)


@contextmanager
def without_attention(model: nn.Module):
    """Inside: every EW-MHSA block of ``model`` runs without its attention (its ``v``
    reads the normalised input directly, as a block built with ``attn=False``; the
    ``qk`` weights go unused): the same network and weights, minus the attention."""
    blocks = [m for m in model.modules() if isinstance(m, iRMB) and m.attn]
    for m in blocks:
        m.attn = False
    try:
        yield
    finally:
        for m in blocks:
            m.attn = True


@contextmanager
def fixed_se_gates(model: nn.Module):
    """Inside: every squeeze-and-excitation gate is a constant for autograd (its output
    is detached), so a gradient flows only through the pixel-wise product; outside SE's
    global pooling every output pixel depends a little on every input pixel."""
    handles = [m.conv_expand.register_forward_hook(lambda _, __, out: out.detach())
               for m in model.modules() if isinstance(m, SqueezeExcite)]
    try:
        yield
    finally:
        for h in handles:
            h.remove()


def _layers_until(backbone: EMO, target) -> Tuple[list, bool]:
    """The modules (stem, blocks) that run up to ``target`` (a stage 0..4: its output,
    or a block name ``'<stage>.<index>'``: that block's output), and whether the final
    norm follows (stage 4 of a backbone with one)."""
    stages = backbone.stages()
    if isinstance(target, int) or str(target).lstrip('-').isdigit():
        stage = int(target)
        if stage not in range(5):
            raise ValueError(f'stage must be 0..4, got {stage}')
        return [m for blocks in stages[:stage + 1] for m in blocks], \
            stage == 4 and backbone.final_norm
    block = get_block(backbone, target)
    layers = [m for blocks in stages for m in blocks]
    return layers[:layers.index(block) + 1], False


def _run_until(backbone: EMO, x: torch.Tensor, target) -> torch.Tensor:
    layers, final_norm = _layers_until(backbone, target)
    for m in layers:
        x = m(x)
    return backbone.norm(x) if final_norm else x


def effective_receptive_field(backbone: EMO, inputs: torch.Tensor, target=3,
                              pixel: Optional[Tuple[int, int]] = None,
                              fixed_se: bool = True) -> Tuple[torch.Tensor, tuple]:
    """The ERF (Luo et al., 2016): |d (sum over channels of the output of ``target`` at
    ``pixel``) / d input|, summed over the input channels and averaged over the
    images of ``inputs`` (B, 3, H, W): an (H, W) map. ``target``: a stage 0..4 (its
    output) or a block ``'<stage>.<index>'``; ``pixel`` defaults to the centre of its
    map; ``fixed_se`` holds the SE gates constant (:func:`fixed_se_gates`), which leaves
    the local and attention paths. Returns the map and the pixel."""
    backbone = find_backbone(backbone)
    x = inputs.detach().clone().requires_grad_(True)
    with (fixed_se_gates(backbone) if fixed_se else _nothing()), torch.enable_grad():
        out = _run_until(backbone, x, target)
        h, w = out.shape[-2:]
        pixel = (h // 2, w // 2) if pixel is None else tuple(pixel)
        if not (0 <= pixel[0] < h and 0 <= pixel[1] < w):
            raise ValueError(f'pixel {pixel} is outside the {h}x{w} map of {target}')
        (grad, ) = torch.autograd.grad(out[:, :, pixel[0], pixel[1]].sum(), x)
    return grad.abs().sum(1).mean(0), pixel


@contextmanager
def _nothing():
    yield


def _conv_support(mask: torch.Tensor, conv: nn.Conv2d, in_size) -> torch.Tensor:
    """Input pixels (in_size) that the output pixels ``mask`` of ``conv`` read."""
    (kh, kw), (sh, sw), (ph, pw) = conv.kernel_size, conv.stride, conv.padding
    dh, dw = conv.dilation
    ones = mask.new_ones(1, 1, kh, kw, dtype=torch.float64)
    full = F.conv_transpose2d(mask[None, None].double(), ones, stride=(sh, sw),
                              dilation=(dh, dw))[0, 0] > 0
    full = F.pad(full, (0, max(0, in_size[1] + pw - full.shape[1]),
                        0, max(0, in_size[0] + ph - full.shape[0])))
    return full[ph:ph + in_size[0], pw:pw + in_size[1]]


def _window_support(mask: torch.Tensor, block: iRMB) -> torch.Tensor:
    """Map pixels whose windows hold a pixel of ``mask``: what attention outputs at
    ``mask`` read."""
    h, w = mask.shape
    padded, grid = pad_to_windows(mask[None, None].float(), block.window_size)
    hit = window_partition(padded, grid)[..., 0].amax(1) > 0  # (n1*n2,) windows hit
    pos = window_positions(block, (h, w))
    out = torch.zeros(padded.shape[-2:], dtype=torch.bool)
    out[pos[..., 0].flatten(), pos[..., 1].flatten()] = hit[:, None].expand(
        pos.shape[:2]).flatten()
    return out[:h, :w]


def _block_support(block: iRMB, mask, in_size, attention: bool):
    """Input pixels of ``block`` that its output pixels ``mask`` depend on (SE gates
    fixed): proj and v are pointwise, the DW-Conv reads its kernel, attention the
    windows."""
    x = mask
    if block.conv_local is not None:
        conv = _conv_support(mask, block.conv_local.conv, in_size)
        x = conv | mask if block.local_skip else conv
    if block.attn and attention:
        x = _window_support(x, block)
    return x | mask if block.has_skip else x


@torch.no_grad()
def theoretical_support(backbone: EMO, input_size: Tuple[int, int], target,
                        pixel: Tuple[int, int], attention: bool = True) -> torch.Tensor:
    """(H, W) bool: the input pixels on which the output of ``target`` (a stage or a
    block, as for :func:`effective_receptive_field`) at ``pixel``
    depends, by the network's structure with the SE gates fixed (the support of
    :func:`effective_receptive_field`). ``attention=False``: through the convolutions
    only (each attention taken as pointwise), the receptive field of the convolutions.
    Read from the backbone's own layers (kernel, stride and padding of every conv, the
    window geometry of every attention block)."""
    backbone = find_backbone(backbone)
    sizes, handles = [], []
    modules, _ = _layers_until(backbone, target)
    for m in modules:
        handles.append(m.register_forward_pre_hook(
            lambda mod, args: sizes.append(tuple(args[0].shape[-2:]))))
    try:
        inputs = torch.zeros(1, backbone.stage0[0].convs[0][0].in_channels, *input_size)
        out = _run_until(backbone, inputs, target)
    finally:
        for h in handles:
            h.remove()
    layers = list(zip(modules, sizes))
    mask = torch.zeros(out.shape[-2:], dtype=torch.bool)
    mask[pixel[0], pixel[1]] = True
    for m, in_size in reversed(layers):
        if isinstance(m, ConvStem):
            mask = _conv_support(mask, m.convs[0][0], in_size)
        elif isinstance(m, iRMB):
            mask = _block_support(m, mask, in_size, attention)
        else:
            raise TypeError(f'theoretical_support: unknown layer {type(m).__name__}')
    return mask
