"""The paper's feature-similarity figure: for one block of stage 3 (any block), the
cosine similarity between the features of the pixels on the image diagonal, after the
EW-MHSA branch, after the DW-Conv branch and at the block output, side by side; one row
per model (EMO and the ablations that drop the DW-Conv or the attention,
configs/classification/ablation/). A block that mixes pixels over a longer range makes
far-apart diagonal pixels more alike (brighter away from the diagonal).

The features are read by forward hooks on the block's own modules: ``v`` (the attention
output through the value expansion; in a block without attention, ``v`` of its input),
``conv_local`` (the DW-Conv with its BN and activation, before its skip) and the block.
Several images: the matrices are averaged. ``--out-json`` writes the numbers.

Examples:
    python tools/visualization/feature_similarity.py configs/demo/emo-1m_demo_cls.py \\
        work_dirs/demo/emo-1m_demo_cls/epoch_12.pth data/demo/imagenet/val/square \\
        --shape 224 --block 3.-1 --out sim.png --out-json sim.json
    python tools/visualization/feature_similarity.py \\
        configs/classification/emo-5m_8xb256_in1k.py emo_5m.pth demo.jpg \\
        --compare configs/classification/ablation/emo-5m_no-attn_8xb256_in1k.py noattn.pth \\
        --compare configs/classification/ablation/emo-5m_no-dwconv_8xb256_in1k.py nodw.pth \\
        --block 3.4 --out sim_5m.png
"""
import json
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))

from emo.apis.launch import DictAction, add_shape_argument, load_config  # noqa: E402
from emo.visualization.images import figure_parser  # noqa: E402

TAPS = ('attn', 'dwconv', 'block')


def parse_args(argv=None):
    parser = figure_parser(
        __doc__, 'Cosine similarity of the features of the pixels on the image diagonal '
        'after the EW-MHSA, after the DW-Conv and at the output of a block')
    parser.add_argument('image', help='an image file, or a folder (matrices averaged)')
    parser.add_argument('--compare', nargs=2, action='append', default=[],
                        metavar=('CONFIG', 'CHECKPOINT'),
                        help='another model drawn in a row below (repeatable), e.g. an '
                        'ablation config with its checkpoint')
    parser.add_argument('--block', default='3.-1',
                        help='block <stage>.<index> (index 0 is the stride-2 block, '
                        'negative from the end; default 3.-1: the last block of stage 3)')
    add_shape_argument(parser, "resize the pipeline's output to H W (or one size; 224 gives "
                       "a 14x14 stage-3 map); default: the config's test size")
    parser.add_argument('--max', type=int, default=16, metavar='N',
                        help='at most N images of a folder (default 16)')
    parser.add_argument('--out', required=True, help='the PNG to write')
    parser.add_argument('--out-json', help='also write the matrices (and the mean '
                        'off-diagonal similarity per branch) as JSON')
    parser.add_argument('--dpi', type=int, default=100, help='PNG resolution')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override settings of every config, key=value pairs')
    args = parser.parse_args(argv)
    return args


def tap_titles(block):
    k = block.conv_local.conv.kernel_size[0] if block.conv_local is not None else None
    return dict(attn='after EW-MHSA (+ v)' if block.attn else 'after v (no attention)',
                dwconv=f'after DW-Conv {k}x{k}' if k else 'no DW-Conv',
                block='block output')


def similarities(config, checkpoint, args, paths):
    import torch

    from emo.visualization import (block_features, diagonal_similarity, find_backbone,
                                   get_block, load_inputs, load_model)
    cfg = load_config(config, args.cfg_options)
    model = load_model(cfg, checkpoint)
    backbone = find_backbone(model)
    block = get_block(backbone, args.block)
    inputs, _ = load_inputs(cfg, model, paths, args.shape)
    feats = block_features(model, block, inputs)
    sims = {}
    for tap in TAPS:
        if tap in feats:
            sims[tap] = torch.stack([diagonal_similarity(f) for f in feats[tap]]).mean(0)
    return dict(config=config, checkpoint=checkpoint, block=args.block,
                map=list(feats['block'].shape[-2:]), input=list(inputs.shape[-2:]),
                titles=tap_titles(block), sims=sims, images=len(paths))


def off_diagonal_mean(sim):
    n = len(sim)
    return float((sim.sum() - sim.diagonal().sum()) / max(1, n * n - n))


def draw(rows, title):
    from emo.visualization import finish_figure, pyplot
    plt = pyplot()
    low = min(float(s.min()) for row in rows for s in row['sims'].values())
    low = min(0.0, low) if low < 0 else round(low - 0.05, 1) if low < 0.95 else 0.9
    fig, axes = plt.subplots(len(rows), len(TAPS), figsize=(3.0 * len(TAPS) + 0.6,
                                                             2.7 * len(rows) + 0.5),
                             squeeze=False)
    for r, row in enumerate(rows):
        for c, tap in enumerate(TAPS):
            ax = axes[r, c]
            ax.set_xticks([])
            ax.set_yticks([])
            if tap not in row['sims']:
                ax.text(0.5, 0.5, row['titles'][tap], ha='center', va='center',
                        transform=ax.transAxes)
                continue
            sim = row['sims'][tap].numpy()
            im = ax.imshow(sim, cmap='viridis', vmin=low, vmax=1)
            ax.set_title(f'{row["titles"][tap]}\nmean off-diagonal '
                         f'{off_diagonal_mean(sim):.2f}', fontsize=8)
            if c == 0:
                ax.set_ylabel(f'{osp.basename(row["config"])[:34]}\n'
                              f'block {row["block"]}, map {row["map"][0]}x{row["map"][1]}'
                              f'\ndiagonal pixel i', fontsize=7)
            if r == len(rows) - 1:
                ax.set_xlabel('diagonal pixel j', fontsize=7)
    return finish_figure(fig, im, axes, 'cosine similarity of the features of pixels i and j',
                         title)


def main(argv=None):
    args = parse_args(argv)
    import emo  # noqa: F401
    from emo.visualization import list_images, save_figure
    paths = list_images(args.image)[:args.max]
    models = [(args.config, args.checkpoint)] + [tuple(c) for c in args.compare]
    rows = [similarities(cfg, ckpt, args, paths) for cfg, ckpt in models]
    first = rows[0]
    title = (f'diagonal feature similarity, {len(paths)} image(s), input '
             f'{first["input"][0]}x{first["input"][1]}')
    written = save_figure(draw(rows, title), args.out, args.dpi)
    for row in rows:
        means = ', '.join(f'{row["titles"][t]}: {off_diagonal_mean(row["sims"][t]):.3f}'
                          for t in TAPS if t in row['sims'])
        print(f'{row["config"]} block {row["block"]}: mean off-diagonal similarity '
              f'{means}')
    if args.out_json:
        with open(args.out_json, 'w') as f:
            json.dump([dict({k: v for k, v in row.items() if k != 'sims'},
                            similarity={t: s.tolist() for t, s in row['sims'].items()},
                            mean_off_diagonal={t: off_diagonal_mean(s)
                                               for t, s in row['sims'].items()})
                       for row in rows], f, indent=1)
        print(f'wrote {args.out_json}')
    print(f'wrote {written}')
    return rows


if __name__ == '__main__':
    main()
