"""emo.visualization.probes: what the pictures claim, on EMO-1M with random weights.

* the diagonal similarity is a cosine-similarity matrix: symmetric, unit diagonal, the
  cosines of the features (a map with known angles);
* the hooked features are the block's own (recomputed by hand from its modules);
* a pixel's attention weights sum to 1 over exactly the pixels of its strided-grid
  window (plus the window's padding), the window computed here from EMO's definition,
  and they are the weights the block used (weights @ v is its attention output);
* the ERF's support is the theoretical receptive field: without attention exactly the
  convolutions' (a box, computed here by hand from the kernels and strides), with
  attention it reaches pixels outside that box through the windows.
"""
import math

import pytest
import torch
from helpers import assert_close_derived

import emo  # noqa: F401
from emo.models import EMO
from emo.visualization import (AttentionRecorder, block_features, diagonal_similarity,
                               effective_receptive_field, get_block, theoretical_support,
                               window_mask, without_attention)

pytestmark = pytest.mark.usefixtures('single_thread')


@pytest.fixture(scope='module')
def emo1m():
    torch.manual_seed(0)
    return EMO('1m').eval()


def test_diagonal_similarity_is_a_cosine_matrix():
    angles = torch.tensor([0.0, 0.3, 1.0, 2.0, 3.0])
    feat = torch.zeros(2, 5, 5)
    for i, a in enumerate(angles):  # pixel (i, i) holds a vector at angle a, length i+1
        feat[:, i, i] = (i + 1) * torch.stack([a.cos(), a.sin()])
    sim = diagonal_similarity(feat)
    expected = (angles[:, None] - angles[None]).double().cos()
    assert torch.allclose(sim, expected, atol=1e-6)
    assert torch.equal(sim, sim.T) and torch.equal(sim.diagonal(), torch.ones(5).double())


def test_block_features_are_the_blocks_own(emo1m):
    torch.manual_seed(1)
    x = torch.randn(2, 3, 112, 112)
    block = get_block(emo1m, '3.2')
    with torch.no_grad():
        plain = emo1m(x)
        feats = block_features(emo1m, block, x)
        assert torch.equal(emo1m(x)[0], plain[0])  # the hooks changed nothing
        inp = {}
        handle = block.register_forward_pre_hook(lambda _, a: inp.setdefault('x', a[0]))
        emo1m(x)
        handle.remove()
        h = inp['x']
        attn = block._attention(block.norm(h))
        dw = block.conv_local(attn)
    assert torch.equal(feats['attn'], attn)
    assert torch.equal(feats['dwconv'], dw)
    assert torch.equal(feats['block'], block(h))
    for tap in ('attn', 'dwconv', 'block'):
        sim = diagonal_similarity(feats[tap][0])
        assert sim.shape == (7, 7) and torch.equal(sim, sim.T)
        assert torch.equal(sim.diagonal(), torch.ones(7, dtype=sim.dtype))


def strided_window(h, w, pixel, ws=7):
    """EMO's window of ``pixel`` by definition: the map padded to multiples of ws,
    n1 = Hp / ws, n2 = Wp / ws; the pixels (r mod n1 + n1 i, c mod n2 + n2 j)."""
    n1, n2 = math.ceil(h / ws), math.ceil(w / ws)
    rows = [pixel[0] % n1 + n1 * i for i in range(ws)]
    cols = [pixel[1] % n2 + n2 * j for j in range(ws)]
    mask = torch.zeros(h, w, dtype=torch.bool)
    for r in rows:
        for c in cols:
            if r < h and c < w:
                mask[r, c] = True
    return mask


@pytest.mark.parametrize('size', [224, 160], ids=['whole-windows', 'padded'])
def test_attention_of_a_pixel_covers_exactly_its_window(emo1m, size):
    torch.manual_seed(2)
    x = torch.randn(1, 3, size, size)
    with torch.no_grad(), AttentionRecorder(emo1m) as rec:
        emo1m(x)
    assert set(rec.calls) == {f'3.{j}' for j in range(1, 8)} | {'4.1', '4.2'}
    h, w = rec.sizes['3.4']
    block = get_block(emo1m, '3.4')
    for pixel in [(0, 0), (h // 2, w // 2 + 1), (h - 1, w - 2)]:
        weights, pad = rec.pixel_weights('3.4', pixel)  # (heads, h, w), (heads,)
        window = strided_window(h, w, pixel)
        mask, tokens = window_mask(block, (h, w), pixel)
        assert torch.equal(mask, window) and tokens == 49
        assert torch.equal((weights > 0).all(0), window)  # every window pixel weighs
        assert torch.equal((weights > 0).any(0), window)  # and nothing else does
        total = weights.sum((1, 2)) + pad
        assert_close_derived(total, torch.ones_like(total), 49, what='weights sum')
        if size == 224:
            assert torch.equal(pad, torch.zeros_like(pad))
        else:
            assert (pad > 0).all() and int(window.sum()) < 49
    call = rec.calls['3.4']  # the weights are the ones the block attended with
    n = call['q'].shape[-1] + call['k'].shape[-2]
    assert_close_derived(rec.weights('3.4') @ call['v'], call['out'], n, what='attention')


def conv_box(size, pixel_rc, radius, stride):
    """The receptive field of a chain of centred convolutions: the box of half-width
    ``radius`` around the input position stride * pixel."""
    mask = torch.zeros(size, size, dtype=torch.bool)
    r0, c0 = (stride * p for p in pixel_rc)
    mask[max(0, r0 - radius):r0 + radius + 1, max(0, c0 - radius):c0 + radius + 1] = True
    return mask


def test_erf_support_is_the_theoretical_receptive_field(emo1m):
    torch.manual_seed(3)
    size, target = 160, '3.1'
    x = torch.randn(1, 3, size, size)
    # half-widths (k - 1) / 2 * (input pixels per step) of the convs up to block 3.1:
    # stem 3x3 (1), stage0 DW 3x3 at stride 2 (2), stage1: 2 + 4, stage2: 4 + 8,
    # stage3: 5x5 at stride 8 (16), 5x5 at stride 16 (32)
    radius = 1 + 2 + 2 + 4 + 4 + 8 + 16 + 32
    with without_attention(emo1m):
        erf, pixel = effective_receptive_field(emo1m, x, target)
        conv = theoretical_support(emo1m, (size, size), target, pixel)
    box = conv_box(size, pixel, radius, 16)
    assert torch.equal(conv, box)
    assert torch.equal(erf > 0, box)  # exactly inside, and all of it
    erf, pixel = effective_receptive_field(emo1m, x, target)
    full = theoretical_support(emo1m, (size, size), target, pixel)
    assert torch.equal(theoretical_support(emo1m, (size, size), target, pixel,
                                           attention=False), box)
    support = erf > 0
    assert torch.equal(support, full)
    outside = support & ~box
    assert outside.sum() > 0.2 * size * size  # the windows reach far outside the box
    # through the stem block's SE (global pooling) every input pixel counts a little
    erf_se, _ = effective_receptive_field(emo1m, x, target, fixed_se=False)
    assert bool((erf_se > 0).all())


def test_names_are_checked(emo1m):
    with pytest.raises(ValueError, match=r"no block '5.0'.*depths of this backbone"):
        get_block(emo1m, '5.0')
    with pytest.raises(ValueError, match='no block'):
        get_block(emo1m, 'stage3')
    with torch.no_grad(), AttentionRecorder(emo1m) as rec:
        emo1m(torch.zeros(1, 3, 64, 64))
    with pytest.raises(KeyError, match='has not attended'):
        rec.weights('3.0')
    with pytest.raises(ValueError, match='outside the 4x4 map'):
        rec.pixel_weights('3.1', (4, 0))
