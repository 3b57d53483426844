"""Where one pixel of an EMO block attends: its EW-MHSA weights drawn on the image, over
its strided-grid window.

EMO's windows are strided grids, not contiguous patches: on an h x w map padded to
multiples of the window size ws, with n1 = h / ws and n2 = w / ws, the pixel (r, c)
attends to the ws x ws pixels (r mod n1 + n1 * i, c mod n2 + n2 * j). The weights are
softmax(q k^T / sqrt(d)) of the q and k the block itself passes to
``F.scaled_dot_product_attention`` (recorded during its forward), per head or averaged
over the heads; weight that falls on the zero-padded tokens of the window is reported.

Examples:
    python tools/visualization/vis_attention.py configs/demo/emo-1m_demo_cls.py \\
        work_dirs/demo/emo-1m_demo_cls/epoch_12.pth data/demo/imagenet/val/cross/000.JPEG \\
        --shape 448 --block 3.-1 --pixel 13 14 --out attention.png
    python tools/visualization/vis_attention.py CONFIG CKPT demo.jpg --block 4.1 \\
        --head 0 --out head0.png
"""
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))

from emo.apis.launch import DictAction, add_shape_argument, load_config  # noqa: E402
from emo.visualization.images import figure_parser  # noqa: E402


def parse_args(argv=None):
    parser = figure_parser(
        __doc__, "Draw one pixel's EW-MHSA weights over its strided-grid window")
    parser.add_argument('image', help='image file')
    parser.add_argument('--block', default='3.-1',
                        help='a block with attention, <stage>.<index> (stages 3 and 4 '
                        'attend, from index 1; default 3.-1)')
    parser.add_argument('--pixel', type=int, nargs=2, metavar=('ROW', 'COL'),
                        help="the query pixel on the block's map (default: its centre)")
    parser.add_argument('--head', type=int, default=None,
                        help='one head (default: the mean over the heads)')
    add_shape_argument(parser, "resize the pipeline's output to H W (or one size): a larger "
                       'input, a larger map and more windows (448: 28x28 at stage 3, n1 = 4)')
    parser.add_argument('--out', required=True, help='the PNG to write')
    parser.add_argument('--dpi', type=int, default=100, help='PNG resolution')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config settings, key=value pairs')
    args = parser.parse_args(argv)
    return args


def draw(picture, weights, mask, pixel, grid, title, stride):
    """Left: the image with the weights (nearest-upsampled map cells) and the window;
    right: the block's map, weights per cell, window cells outlined."""
    import numpy as np

    from emo.visualization import finish_figure, pyplot
    plt = pyplot()
    from matplotlib.patches import Patch, Rectangle
    h, w = weights.shape
    fig, axes = plt.subplots(1, 2, figsize=(9.2, 4.4))
    H, W = picture.shape[:2]
    big = np.kron(weights, np.ones((stride, stride)))[:H, :W]
    axes[0].imshow(picture)
    shown = np.ma.masked_where(big <= 0, big)
    im = axes[0].imshow(shown, cmap='magma', alpha=0.75, vmin=0, vmax=weights.max())
    r, c = pixel
    axes[0].add_patch(Rectangle((c * stride - 0.5, r * stride - 0.5), stride, stride,
                                fill=False, edgecolor='cyan', linewidth=2))
    axes[0].set_title(f'on the image (one map cell = {stride}x{stride} pixels)', fontsize=8)
    axes[1].imshow(weights, cmap='magma', vmin=0, vmax=weights.max())
    rows, cols = np.nonzero(mask)
    for y, x in zip(rows, cols):
        axes[1].add_patch(Rectangle((x - 0.5, y - 0.5), 1, 1, fill=False,
                                    edgecolor='lime', linewidth=0.8))
    axes[1].add_patch(Rectangle((c - 0.5, r - 0.5), 1, 1, fill=False, edgecolor='cyan',
                                linewidth=2))
    ws_h, ws_w, n1, n2 = grid
    axes[1].set_title(f'on the {h}x{w} map: window {ws_h}x{ws_w}, pixels {n1} apart '
                      f'(rows), {n2} (cols)', fontsize=8)
    for ax in axes:
        ax.set_xticks([])
        ax.set_yticks([])
    axes[1].legend(handles=[Patch(edgecolor='cyan', fill=False, label='query pixel'),
                            Patch(edgecolor='lime', fill=False,
                                  label="the query's window")],
                   loc='upper center', bbox_to_anchor=(0.5, -0.02), ncol=2, fontsize=7)
    return finish_figure(fig, im, axes, 'attention weight (softmax; a row sums to 1)', title)


def main(argv=None):
    args = parse_args(argv)
    import torch

    import emo  # noqa: F401
    from emo.models.utils.irmb import pad_to_windows
    from emo.visualization import (AttentionRecorder, find_backbone, get_block,
                                   load_inputs, load_model, save_figure, window_mask)
    cfg = load_config(args.config, args.cfg_options)
    model = load_model(cfg, args.checkpoint)
    backbone = find_backbone(model)
    block = get_block(backbone, args.block)
    if not block.attn:
        raise SystemExit(f'block {args.block} of {args.config} has no attention; blocks '
                         f'with attention: {", ".join(AttentionRecorder(backbone).blocks)}')
    inputs, pictures = load_inputs(cfg, model, [args.image], args.shape)
    with torch.no_grad(), AttentionRecorder(backbone) as rec:
        backbone(inputs)
    name = next(n for n, b in rec.blocks.items() if b is block)
    h, w = rec.sizes[name]
    pixel = tuple(args.pixel) if args.pixel else (h // 2, w // 2)
    weights, pad = rec.pixel_weights(name, pixel)
    heads = weights.shape[0]
    if args.head is not None and not 0 <= args.head < heads:
        raise SystemExit(f'--head {args.head}: block {args.block} has {heads} heads')
    sel = weights.mean(0) if args.head is None else weights[args.head]
    sel_pad = pad.mean() if args.head is None else pad[args.head]
    mask, tokens = window_mask(block, (h, w), pixel)
    _, grid = pad_to_windows(torch.empty(1, 1, h, w), block.window_size)
    stride = backbone.strides[int(name.split('.')[0])]  # input pixels per map cell
    who = 'mean of the heads' if args.head is None else f'head {args.head} of {heads}'
    title = (f'{osp.basename(args.config)}: block {name}, query pixel {pixel}, {who}; '
             f'{int(mask.sum())} window pixels on the map, {tokens - int(mask.sum())} '
             f'padding, weight on padding {float(sel_pad):.3f}')
    fig = draw(pictures[0], sel.numpy(), mask.numpy(), pixel, grid, title, stride)
    written = save_figure(fig, args.out, args.dpi)
    print(f'block {name}: map {h}x{w}, window grid {grid[:2]}, {grid[2]}x{grid[3]} '
          f'windows; pixel {pixel}: weights on the map sum to '
          f'{float(sel.sum()):.6f}, on padding {float(sel_pad):.6f}')
    print(f'wrote {written}')
    return dict(weights=sel, padding=sel_pad, mask=mask, pixel=pixel, grid=grid)


if __name__ == '__main__':
    main()
