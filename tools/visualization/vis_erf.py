"""Effective receptive field (Luo et al., 2016) of an EMO backbone: the gradient of one
output pixel of a stage (or block) with respect to the input, |d out / d input| summed
over the channels and averaged over images, drawn on a log scale with the theoretical
receptive fields: of the convolutions alone (every attention taken as pointwise), and
with the strided-grid attention windows.

The paper's argument: the DW-Conv sees a neighbourhood, the EW-MHSA reaches pixels far
apart (its windows are strided grids), so with attention the field reaches outside the
convolutions' one. ``--no-attention`` adds the same network and weights with the
attention switched off; ``--compare CONFIG CKPT`` another model (e.g.
configs/classification/ablation/emo-5m_no-attn_8xb256_in1k.py). The squeeze-and-
excitation gates (the stem block's) are held constant (``--keep-se`` lets their global
pooling in: every pixel then counts a little).

Examples:
    python tools/visualization/vis_erf.py configs/demo/emo-1m_demo_cls.py \\
        work_dirs/demo/emo-1m_demo_cls/epoch_12.pth data/demo/imagenet/val \\
        --shape 224 --target 3.1 --no-attention --out erf.png
    python tools/visualization/vis_erf.py configs/classification/emo-5m_8xb256_in1k.py \\
        random data/demo/imagenet/val --shape 224 --target 3 --out erf_init.png
"""
import json
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))

from emo.apis.launch import DictAction, add_shape_argument, load_config  # noqa: E402
from emo.visualization.images import figure_parser  # noqa: E402


def parse_args(argv=None):
    parser = figure_parser(
        __doc__, 'Effective receptive field of one output pixel of a stage or block, with '
        'the theoretical receptive fields with and without attention')
    parser.add_argument('images', help='an image file or a folder (the ERF is averaged '
                        'over its images)')
    parser.add_argument('--target', default='3',
                        help='a stage 0..4 (its output) or a block <stage>.<index> '
                        '(default: 3, the output of stage 3)')
    parser.add_argument('--pixel', type=int, nargs=2, metavar=('ROW', 'COL'),
                        help="output pixel on the target's map (default: its centre)")
    parser.add_argument('--no-attention', action='store_true',
                        help='also draw the same network and weights without attention')
    parser.add_argument('--compare', nargs=2, action='append', default=[],
                        metavar=('CONFIG', 'CHECKPOINT'),
                        help='also draw another model (repeatable)')
    parser.add_argument('--keep-se', action='store_true',
                        help="let gradients through the SE gates' global pooling")
    add_shape_argument(parser, "resize the pipeline's output to H W (or one size)")
    parser.add_argument('--max', type=int, default=16, metavar='N',
                        help='at most N images of a folder (default 16)')
    parser.add_argument('--out', required=True, help='the PNG to write')
    parser.add_argument('--out-json', help='also write the support sizes per model')
    parser.add_argument('--dpi', type=int, default=100, help='PNG resolution')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override settings of every config, key=value pairs')
    args = parser.parse_args(argv)
    return args


def measure(model, cfg, args, paths, label):
    from contextlib import nullcontext

    from emo.visualization import (effective_receptive_field, find_backbone,
                                   load_inputs, theoretical_support, without_attention)
    inputs, pictures = load_inputs(cfg, model, paths, args.shape)
    backbone = find_backbone(model)
    rows = []
    variants = [(label, nullcontext)]
    if args.no_attention:
        variants.append((label + ', attention off', lambda: without_attention(backbone)))
    for name, context in variants:
        with context():
            erf, pixel = effective_receptive_field(backbone, inputs, args.target,
                                                   args.pixel, fixed_se=not args.keep_se)
            size = tuple(inputs.shape[-2:])
            conv = theoretical_support(backbone, size, args.target, pixel, attention=False)
            full = theoretical_support(backbone, size, args.target, pixel)
        support = erf > 0
        rows.append(dict(
            label=name, erf=erf, conv=conv, full=full, pixel=pixel, picture=pictures[0],
            stats=dict(input=list(size), pixel=list(pixel), images=len(paths),
                       erf_support=int(support.sum()), conv_field=int(conv.sum()),
                       attention_field=int(full.sum()),
                       outside_conv=int((support & ~conv).sum()),
                       erf_mass_outside_conv=float(erf[~conv].sum() / erf.sum()),
                       fixed_se=not args.keep_se)))
    return rows


def draw(rows, title, target):
    import numpy as np

    from emo.visualization import finish_figure, pyplot
    plt = pyplot()
    from matplotlib.lines import Line2D
    fig, axes = plt.subplots(1, len(rows), figsize=(3.6 * len(rows) + 0.8, 4.2),
                             squeeze=False)
    for ax, row in zip(axes[0], rows):
        erf = row['erf'].numpy()
        log = np.log10(np.maximum(erf / erf.max(), 1e-12))
        im = ax.imshow(log, cmap='inferno', vmin=-6, vmax=0)
        ax.contour(row['conv'].numpy(), levels=[0.5], colors='cyan', linewidths=1.2)
        if not row['full'].all() or not row['conv'].all():
            ax.contour(row['full'].numpy(), levels=[0.5], colors='lime', linewidths=0.8,
                       linestyles='dashed')
        s = row['stats']
        ax.set_title(f'{row["label"]}\nsupport {s["erf_support"]} px, '
                     f'{s["outside_conv"]} outside the conv field\n'
                     f'{100 * s["erf_mass_outside_conv"]:.1f} % of the ERF outside it',
                     fontsize=7)
        ax.set_xticks([])
        ax.set_yticks([])
    handles = [Line2D([], [], color='cyan', label='receptive field of the convolutions'),
               Line2D([], [], color='lime', linestyle='dashed',
                      label='with the attention windows (where not the whole image)')]
    fig.legend(handles=handles, loc='lower center', ncol=2, fontsize=7)
    fig.subplots_adjust(bottom=0.12)
    return finish_figure(fig, im, axes, 'log10 ERF / max (|d out / d input|, mean of images)',
                         title, fraction=0.03)


def main(argv=None):
    args = parse_args(argv)
    import emo  # noqa: F401
    from emo.visualization import list_images, load_model, save_figure
    paths = list_images(args.images)[:args.max]
    rows = []
    for config, ckpt in [(args.config, args.checkpoint)] + [tuple(c) for c in args.compare]:
        cfg = load_config(config, args.cfg_options)
        model = load_model(cfg, ckpt)
        label = osp.basename(config)[:-3] + (' (random init)' if ckpt == 'random' else '')
        rows += measure(model, cfg, args, paths, label)
    s = rows[0]['stats']
    what = f'stage {args.target}' if '.' not in args.target else f'block {args.target}'
    title = (f'effective receptive field of output pixel {tuple(s["pixel"])} of {what}, '
             f'{len(paths)} image(s) at {s["input"][0]}x{s["input"][1]}')
    written = save_figure(draw(rows, title, args.target), args.out, args.dpi)
    for row in rows:
        print(f'{row["label"]}: {json.dumps(row["stats"])}')
    if args.out_json:
        with open(args.out_json, 'w') as f:
            json.dump([dict(label=r['label'], **r['stats']) for r in rows], f, indent=1)
        print(f'wrote {args.out_json}')
    print(f'wrote {written}')
    return rows


if __name__ == '__main__':
    main()
