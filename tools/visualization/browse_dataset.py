"""Draw what a config's data pipeline feeds the network: augmented images with their labels,
boxes or masks, through the library's own visualizer (the config's ``visualizer``:
mmpretrain's ``UniversalVisualizer``, mmdet's ``DetLocalVisualizer``, mmseg's
``SegLocalVisualizer``). Any classification, detection or segmentation config.

The images are the pipeline's output (after resizing, cropping, flipping, colour
augmentation), before the model's data preprocessor (normalisation, batching). Each run
draws new random augmentations; ``randomness.seed`` of the config is not applied.

Examples:
    python tools/visualization/browse_dataset.py configs/demo/ssdlite_emo-1m_demo_coco.py \\
        --output-dir vis/coco --show-number 8
    python tools/visualization/browse_dataset.py configs/demo/emo-1m_demo_cls.py \\
        --output-dir vis/cls --phase val --rescale-factor 3
    python tools/visualization/browse_dataset.py CONFIG --show --show-interval 1 \\
        --cfg-options train_dataloader.dataset.data_root=data/my_set
"""
import argparse
import os
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))

import numpy as np  # noqa: E402

from emo.apis.launch import DictAction, check_data, load_config  # noqa: E402


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Draw the output of a config\'s data pipeline (images with their '
        'labels / boxes / masks)')
    parser.add_argument('config', help='config file path')
    parser.add_argument('--output-dir', default=None,
                        help='folder to write the drawings to: <index>_<image file name> '
                        'for each image')
    parser.add_argument('--phase', default='train', choices=['train', 'val', 'test'],
                        help='which data set and pipeline to browse (default: train)')
    parser.add_argument('--show-number', type=int, default=sys.maxsize,
                        help='number of images to draw (default: all)')
    parser.add_argument('--show', action='store_true',
                        help='display each drawing in a window (needs a display)')
    parser.add_argument('--show-interval', type=float, default=2,
                        help='seconds each displayed image stays (with --show)')
    parser.add_argument('--rescale-factor', type=float, default=None,
                        help='classification only: scale the image by this factor before '
                        'drawing (small images leave no room for the label)')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config settings, key=value pairs '
                        '(e.g. train_dataloader.dataset.data_root=data/my_set)')
    args = parser.parse_args(argv)
    if args.output_dir is None and not args.show:
        parser.error('give --output-dir DIR (write the drawings) and/or --show (display)')
    if args.show_number < 1:
        parser.error('--show-number must be at least 1')
    return args


def build_dataset(cfg, phase):
    """The data set of ``<phase>_dataloader`` with its pipeline, under the config's scope."""
    from mmengine.registry import DATASETS, init_default_scope
    loader = cfg.get(f'{phase}_dataloader')
    if not loader or not loader.get('dataset'):
        raise KeyError(f'the config has no {phase}_dataloader.dataset')
    check_data(cfg, (phase, ))
    init_default_scope(cfg.default_scope)
    return DATASETS.build(loader.dataset)


def build_visualizer(cfg, dataset):
    """The config's visualizer, with the data set's classes / palette."""
    from mmengine.registry import VISUALIZERS
    vis_cfg = cfg.visualizer.copy()
    vis_cfg.pop('vis_backends', None)  # drawings go to files, not to a backend
    vis_cfg.setdefault('name', 'browse_dataset')
    visualizer = VISUALIZERS.build(vis_cfg)
    visualizer.dataset_meta = dataset.metainfo
    return visualizer


def to_rgb(inputs):
    """Packed ``inputs`` (3, H, W) BGR tensor -> (H, W, 3) uint8 RGB array."""
    img = inputs.permute(1, 2, 0).numpy()
    return np.ascontiguousarray(img[..., ::-1].clip(0, 255).astype(np.uint8))


def draw(visualizer, scope, image, sample, args, name, out_file):
    """Draw the ground truth of one packed sample with the scope's visualizer; returns
    the drawing, (H, W, 3) RGB."""
    common = dict(show=args.show, wait_time=args.show_interval, out_file=out_file)
    if scope == 'mmpretrain':
        return visualizer.visualize_cls(image, sample, draw_pred=False,
                                        rescale_factor=args.rescale_factor, name=name,
                                        **common)
    if scope == 'mmdet':
        from mmdet.structures.bbox import BaseBoxes
        from mmdet.structures.mask import BitmapMasks, PolygonMasks
        gt = sample.gt_instances
        if isinstance(gt.get('bboxes'), BaseBoxes):
            gt.bboxes = gt.bboxes.tensor
        if isinstance(gt.get('masks'), (BitmapMasks, PolygonMasks)):
            gt.masks = gt.masks.to_ndarray().astype(bool)
        sample.gt_instances = gt
    if scope == 'mmseg' and 'gt_sem_seg' in sample:
        seg = sample.gt_sem_seg.data  # (1, H, W)
        if tuple(seg.shape[-2:]) != image.shape[:2]:
            # mmseg's test pipelines load the labels after resizing the image (metrics
            # are taken at the original size): draw them at the image's size
            import mmcv
            from mmengine.structures import PixelData
            resized = mmcv.imresize(seg[0].numpy(), image.shape[1::-1],
                                    interpolation='nearest')
            sample.gt_sem_seg = PixelData(data=seg.new_tensor(resized)[None])
    visualizer.add_datasample(name, image, sample, draw_gt=True, draw_pred=False, **common)
    return visualizer.get_image()


def main(argv=None):
    args = parse_args(argv)
    cfg = load_config(args.config, args.cfg_options)
    scope = cfg.default_scope
    dataset = build_dataset(cfg, args.phase)
    visualizer = build_visualizer(cfg, dataset)
    if args.output_dir:
        os.makedirs(args.output_dir, exist_ok=True)

    number = min(args.show_number, len(dataset))
    for idx in range(number):
        item = dataset[idx]
        sample = item['data_samples']
        image = to_rgb(item['inputs'])
        name = f"{idx:05d}_{osp.basename(sample.get('img_path') or 'image.png')}"
        out_file = osp.join(args.output_dir, name) if args.output_dir else None
        draw(visualizer, scope, image, sample, args, name, out_file)
    where = f' to {args.output_dir}' if args.output_dir else ''
    print(f'drew {number} of the {len(dataset)} {args.phase} images of {args.config}{where}')


if __name__ == '__main__':
    main()
