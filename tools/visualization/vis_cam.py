"""Class activation maps (Grad-CAM and the other methods of the ``grad-cam`` package,
the library mmpretrain's ``vis_cam.py`` uses) of a classifier of this project on images.

The map explains one class per image (the predicted one, or ``--target-category``); it is
computed at a target layer (default: the deepest stage whose map is at least 7x7 at the
input size: ``backbone.norm`` at 224, stage 2 on the 64x64 demo images), scaled to [0, 1]
and drawn over the image the network sees (the config's test pipeline). ``--deploy``
uses the inference form (BatchNorms folded); it gives the same maps.

Examples:
    python tools/visualization/vis_cam.py configs/demo/emo-1m_demo_cls.py \\
        work_dirs/demo/emo-1m_demo_cls/epoch_12.pth data/demo/imagenet/val/*/000.JPEG \\
        --out cam.png
    python tools/visualization/vis_cam.py CONFIG CKPT data/demo/imagenet/val \\
        --method gradcam++ --target-layers backbone.stage3.-1 --out-dir cams/ --max 8
    python tools/visualization/vis_cam.py CONFIG CKPT demo.jpg --target-category 281 \\
        --out cat.png
"""
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))

from emo.apis.launch import DictAction, add_shape_argument, load_config  # noqa: E402
from emo.visualization.cam import CAM_METHODS  # noqa: E402
from emo.visualization.images import figure_parser  # noqa: E402

PER_FIGURE = 8  # images per picture


def parse_args(argv=None):
    parser = figure_parser(
        __doc__, 'Draw class activation maps (Grad-CAM & co., the grad-cam package) of a '
        'classifier over images', config_help='classification config file')
    parser.add_argument('image', nargs='+', help='image files and / or folders (all their '
                        'images)')
    parser.add_argument('--target-layers', nargs='+', metavar='NAME',
                        help='modules to compute the map at, dotted paths with list indices '
                        '(backbone.norm, backbone.stage3.-1, backbone.stage4.2.conv_local); '
                        'several are averaged. Default: the output of the deepest stage '
                        'whose map is at least 7x7 at the input size (backbone.norm at '
                        '224, backbone.stage2.-1 at 64)')
    parser.add_argument('--method', default='gradcam', type=str.lower,
                        choices=sorted(CAM_METHODS), help='CAM method (default: gradcam)')
    parser.add_argument('--target-category', type=int, nargs='+', metavar='C',
                        help='class index to explain, one for all images or one per image '
                        '(default: each image\'s predicted class)')
    parser.add_argument('--eigen-smooth', action='store_true',
                        help='first principal component of the weighted activations '
                        '(less noise)')
    parser.add_argument('--aug-smooth', action='store_true',
                        help='average over flips and scalings of the image (slower)')
    parser.add_argument('--deploy', action='store_true',
                        help='the inference form (BatchNorms folded into the convs)')
    add_shape_argument(parser, "resize the pipeline's output to H W (or one size): the "
                       'network and the map at another resolution')
    parser.add_argument('--max', type=int, default=None, metavar='N',
                        help='at most N images of a folder (default: all)')
    parser.add_argument('--out', help='the PNG to write (up to 8 images in one picture; '
                        'for more, give --out-dir)')
    parser.add_argument('--out-dir', help='folder: one PNG per 8 images, cam_<k>.png')
    parser.add_argument('--dpi', type=int, default=100, help='PNG resolution')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config settings, key=value pairs')
    args = parser.parse_args(argv)
    if not args.out and not args.out_dir:
        parser.error('give --out FILE.png or --out-dir DIR')
    if args.max is not None and args.max < 1:
        parser.error('--max must be at least 1')
    return args


def draw(pictures, result, names, classes, title):
    """One picture: per image, the image and the map over it (jet, 0..1)."""
    import numpy as np

    from emo.visualization import finish_figure, pyplot
    plt = pyplot()
    n = len(pictures)
    fig, axes = plt.subplots(2, n, figsize=(1.9 * n + 0.9, 4.3), squeeze=False)
    for i, (pic, cam) in enumerate(zip(pictures, result['cams'])):
        c = result['categories'][i]
        label = classes[c] if classes and c < len(classes) else str(c)
        p = float(result['scores'][i, c])
        axes[0, i].imshow(pic)
        axes[0, i].set_title(osp.join(osp.basename(osp.dirname(names[i])),
                                     osp.basename(names[i]))[-22:], fontsize=8)
        axes[1, i].imshow(pic)
        im = axes[1, i].imshow(cam, cmap='jet', alpha=0.5, vmin=0, vmax=1)
        y, x = np.unravel_index(cam.argmax(), cam.shape)
        axes[1, i].plot(x, y, 'w+', markersize=9, markeredgewidth=2)
        axes[1, i].set_title(f'{label} (p={p:.2f})', fontsize=8)
        for ax in axes[:, i]:
            ax.set_xticks([])
            ax.set_yticks([])
    axes[0, 0].set_ylabel('image', fontsize=8)
    axes[1, 0].set_ylabel('map of the class', fontsize=8)
    return finish_figure(fig, im, axes[1], 'relevance (0-1), + = maximum', title,
                         fraction=0.03)


def main(argv=None):
    args = parse_args(argv)
    import emo  # noqa: F401
    from emo.apis import dataset_meta, task_of
    from emo.visualization import (class_activation_maps, list_images, load_inputs,
                                   load_model, save_figure)
    cfg = load_config(args.config, args.cfg_options)
    model = load_model(cfg, args.checkpoint, deploy=args.deploy)
    if task_of(model) != 'classification':
        raise SystemExit(f'{args.config}: vis_cam.py explains classifiers; this config '
                         f'builds a {task_of(model)} model')
    paths = [p for path in args.image for p in list_images(path)][:args.max]
    if args.out and not args.out_dir and len(paths) > PER_FIGURE:
        raise SystemExit(f'{" ".join(args.image)}: {len(paths)} images do not fit one picture '
                         f'(at most {PER_FIGURE}): give --out-dir, or --max {PER_FIGURE}')
    cats = args.target_category
    if cats and len(cats) not in (1, len(paths)):
        raise SystemExit(f'--target-category: give one class or one per image '
                         f'({len(paths)}), got {len(cats)}')
    classes = getattr(model, 'dataset_meta', {}).get('classes') or \
        dataset_meta(cfg).get('classes')
    written = []
    for k in range(0, len(paths), PER_FIGURE):
        chunk = paths[k:k + PER_FIGURE]
        inputs, pictures = load_inputs(cfg, model, chunk, args.shape)
        chunk_cats = None if not cats else (cats if len(cats) == 1 else
                                            cats[k:k + PER_FIGURE])
        result = class_activation_maps(model, inputs, args.target_layers, args.method,
                                       chunk_cats, args.eigen_smooth, args.aug_smooth)
        form = 'deploy form' if args.deploy else 'training form'
        title = (f'{CAM_METHODS[args.method]} of {osp.basename(args.config)} ({form}) at '
                 f'{", ".join(result["layers"])}, input {inputs.shape[-2]}x'
                 f'{inputs.shape[-1]}')
        fig = draw(pictures, result, chunk, classes, title)
        out = args.out if not args.out_dir else osp.join(args.out_dir,
                                                         f'cam_{k // PER_FIGURE}.png')
        written.append(save_figure(fig, out, args.dpi))
        for i, (path, c) in enumerate(zip(chunk, result['categories'])):
            y, x = divmod(int(result['cams'][i].argmax()), result['cams'][i].shape[1])
            print(f'{path}: class {c} ({classes[c] if classes else c}), '
                  f'p={float(result["scores"][i, c]):.3f}, maximum at (x={x}, y={y})')
    print('wrote ' + ', '.join(written))
    return written


if __name__ == '__main__':
    main()
