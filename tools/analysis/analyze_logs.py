"""Plot training curves and print training-time statistics from mmengine's scalar logs.

Reads ``<work_dir>/<timestamp>/vis_data/scalars.json`` (one JSON object per line, as
mmengine's ``LocalVisBackend`` writes it) of any task: classification, detection or
segmentation. A work dir or a timestamp dir may be given instead of the file: the newest
``scalars.json`` below it is used. Train lines (those with ``loss``/``lr``) are plotted
against the iteration, or against the epoch for epoch-based runs, where validation metrics
(logged once per validation, ``step`` = epoch) land on the same axis.

Examples:
    # one panel per key, the runs overlaid; PNG or SVG by the --out extension
    python tools/analysis/analyze_logs.py plot_curve work_dirs/emo-1m_demo_cls \\
        --keys loss lr accuracy/top1 --out curves.png
    python tools/analysis/analyze_logs.py plot_curve RUN_A/scalars.json RUN_B/scalars.json \\
        --keys 'loss*' mIoU --legend baseline lr-x2 --title 'DeepLabv3 EMO-1M' --out cmp.svg
    # s/iter, slowest / fastest epoch, total training time
    python tools/analysis/analyze_logs.py cal_train_time work_dirs/ssdlite_emo-1m_demo_coco
"""
import argparse
import fnmatch
import glob
import json
import os.path as osp
import re

import numpy as np

TRAIN_MARKERS = ('loss', 'lr')
NOT_CURVES = {'step', 'epoch', 'iter'}


def find_scalars(path):
    """``path`` itself if it is a file, else the newest ``**/vis_data/scalars.json``
    (or ``**/scalars.json``) under the folder ``path``."""
    if osp.isfile(path):
        return path
    if not osp.isdir(path):
        raise FileNotFoundError(f'log not found: {path}')
    found = glob.glob(osp.join(path, '**', 'scalars.json'), recursive=True)
    if not found:
        raise FileNotFoundError(f'no scalars.json under {path} (mmengine writes '
                                '<work_dir>/<timestamp>/vis_data/scalars.json)')
    return max(found, key=lambda p: (osp.getmtime(p), p))


def load_scalars(path):
    """Split an mmengine scalars file into ``dict(train=[...], val=[...])`` lists of dicts.

    Train records hold ``loss`` or ``lr`` (+ ``iter``, ``epoch`` for epoch-based runs);
    every other record is a validation (or test) result. Raises ``ValueError`` naming the
    file and the line on anything that is not one JSON object per line.
    """
    log = dict(train=[], val=[])
    with open(path) as f:
        for num, line in enumerate(f, 1):
            line = line.strip()
            if not line:
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as e:
                raise ValueError(f'{path}:{num}: not a JSON line ({e.msg}); expected '
                                 'mmengine\'s vis_data/scalars.json') from None
            if not isinstance(record, dict) or 'step' not in record:
                raise ValueError(f'{path}:{num}: expected a JSON object with a "step", got '
                                 f'{line[:80]!r}')
            is_train = any(k in record for k in TRAIN_MARKERS) or 'iter' in record
            log['train' if is_train else 'val'].append(record)
    if not log['train'] and not log['val']:
        raise ValueError(f'{path}: no records')
    return log


def run_name(path):
    """``<work_dir name>`` for ``<work_dir>/<timestamp>/vis_data/scalars.json``."""
    parts = osp.abspath(path).split(osp.sep)
    if len(parts) >= 4 and parts[-2] == 'vis_data':
        return parts[-4]
    return osp.splitext(osp.basename(path))[0]


def available_keys(log):
    """(train keys, val keys) that can be plotted."""
    train = {k for r in log['train'] for k in r} - NOT_CURVES
    val = {k for r in log['val'] for k in r} - NOT_CURVES
    return train, val


def expand_keys(patterns, logs, paths):
    """``--keys`` (exact names or shell patterns like ``loss*``) -> the keys to plot, in
    order. A pattern that matches in none of the logs is an error listing what exists."""
    everything = set()
    for log in logs:
        train, val = available_keys(log)
        everything |= train | val
    keys = []
    for pattern in patterns:
        matched = sorted(fnmatch.filter(everything, pattern))
        if not matched:
            raise KeyError(f'no key {pattern!r} in {", ".join(paths)}; available: '
                           f'{", ".join(sorted(everything))}')
        keys += [k for k in matched if k not in keys]
    return keys


def iters_per_epoch(train):
    """Iterations per epoch of an epoch-based run (None for iteration-based ones): the
    last iteration of the first epoch logged (mmengine logs the end of every epoch)
    divided by its number, so resumed runs work too."""
    ends = {}
    for r in train:
        if 'epoch' in r and 'iter' in r:
            ends[r['epoch']] = max(ends.get(r['epoch'], 0), r['iter'])
    if not ends:
        return None
    first = min(ends)
    return ends[first] / first


def curve(log, key):
    """(xs, ys, x label) of ``key``; epoch-based runs are plotted against epochs."""
    per_epoch = iters_per_epoch(log['train'])
    train = [r for r in log['train'] if key in r]
    if train:
        xs = np.array([r['step'] for r in train], dtype=float)
        if per_epoch:
            return xs / per_epoch, np.array([r[key] for r in train]), 'epoch'
        return xs, np.array([r[key] for r in train]), 'iteration'
    val = [r for r in log['val'] if key in r]
    xs = np.array([r['step'] for r in val], dtype=float)
    return xs, np.array([r[key] for r in val]), 'epoch' if per_epoch else 'iteration'


def legends(args, num_keys):
    """One name per run (``--legend`` or the work dir names); or, upstream's way, one
    label per (run, key) curve when ``--legend`` gives that many."""
    num_runs = len(args.paths)
    if args.legend is None:
        return [[run_name(p)] * num_keys for p in args.paths]
    if len(args.legend) == num_runs:
        return [[name] * num_keys for name in args.legend]
    if len(args.legend) == num_runs * num_keys:
        return [args.legend[i * num_keys:(i + 1) * num_keys] for i in range(num_runs)]
    raise ValueError(f'--legend needs {num_runs} names (one per log) or {num_runs * num_keys} '
                     f'(one per log and key), got {len(args.legend)}')


def draw_curves(logs, keys, labels, paths, window_size='', title=None):
    """A matplotlib figure with one panel per key, every log's curve in it.

    ``labels[i][j]`` names the curve of log i in panel j. Returns the figure.
    """
    import matplotlib.pyplot as plt
    if window_size:
        width, height = (float(v) for v in window_size.split('*'))
    else:
        width, height = 7.0, 2.2 * len(keys) + 0.4
    fig, axes = plt.subplots(len(keys), 1, figsize=(width, height), squeeze=False,
                             sharex=True)
    for j, key in enumerate(keys):
        ax = axes[j, 0]
        xlabel = None
        for i, log in enumerate(logs):
            train, val = available_keys(log)
            if key not in train | val:
                print(f'{paths[i]}: no {key!r}, not drawn')
                continue
            xs, ys, xlabel = curve(log, key)
            style = dict(marker='o', markersize=3) if key not in train else {}
            ax.plot(xs, ys, label=labels[i][j], linewidth=1.0, **style)
            print(f'{paths[i]}: {key}: {len(xs)} points, last {ys[-1]:.6g}')
        ax.set_ylabel(key)
        if xlabel and j == len(keys) - 1:
            ax.set_xlabel(xlabel)
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize='small')
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def plot_curve(logs, args):
    """``plot_curve``: the figure of ``args.keys``, saved to ``args.out`` or shown."""
    import matplotlib
    if args.backend:
        matplotlib.use(args.backend)
    elif args.out:
        matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    if args.style:
        plt.style.use(args.style)
    keys = expand_keys(args.keys, logs, args.paths)
    fig = draw_curves(logs, keys, legends(args, len(keys)), args.paths, args.window_size,
                      args.title)
    if args.out:
        fig.savefig(args.out, dpi=args.dpi)
        print(f'saved the curves to {args.out}')
    else:
        plt.show()
    plt.close(fig)


def train_time(log, include_outliers=False):
    """Time statistics of the training records of one log.

    Returns a dict: ``s_per_iter`` (mean of the logged ``time``, seconds per iteration),
    ``data_time`` (mean ``data_time``), ``iters`` (the last iteration logged),
    ``total_s`` (``s_per_iter * iters``: training only, validation excluded), and for
    epoch-based runs ``epoch_times`` ({epoch: mean s/iter}), ``slowest`` / ``fastest``
    (epoch, s/iter) and ``std`` over epochs. The first record of each epoch (data loader
    start-up) is left out of the epoch means unless ``include_outliers``.
    """
    train = [r for r in log['train'] if 'time' in r]
    if not train:
        raise ValueError('no training records with a "time" in this log')
    times = np.array([r['time'] for r in train])
    iters = max(r.get('iter', r['step']) for r in train)
    stats = dict(s_per_iter=float(times.mean()), iters=int(iters),
                 total_s=float(times.mean() * iters))
    if all('data_time' in r for r in train):
        stats['data_time'] = float(np.mean([r['data_time'] for r in train]))
    if all('epoch' in r for r in train):
        epochs = {}
        for r in train:
            epochs.setdefault(r['epoch'], []).append(r['time'])
        means = {e: float(np.mean(t if include_outliers or len(t) == 1 else t[1:]))
                 for e, t in sorted(epochs.items())}
        stats['epoch_times'] = means
        stats['slowest'] = max(means.items(), key=lambda kv: kv[1])
        stats['fastest'] = min(means.items(), key=lambda kv: kv[1])
        stats['std'] = float(np.std(list(means.values())))
    return stats


def format_seconds(seconds):
    h, rest = divmod(int(round(seconds)), 3600)
    m, s = divmod(rest, 60)
    return f'{h}:{m:02d}:{s:02d}'


def cal_train_time(logs, args):
    for path, log in zip(args.paths, logs):
        stats = train_time(log, args.include_outliers)
        print(f'----- training time of {path} -----')
        if 'epoch_times' in stats:
            (slow, slow_t), (fast, fast_t) = stats['slowest'], stats['fastest']
            print(f'slowest epoch {slow}, average time is {slow_t:.4f} s/iter')
            print(f'fastest epoch {fast}, average time is {fast_t:.4f} s/iter')
            print(f'time std over epochs is {stats["std"]:.4f}')
        line = f'average iter time: {stats["s_per_iter"]:.4f} s/iter'
        if 'data_time' in stats:
            line += f' (data loading {stats["data_time"]:.4f})'
        print(line)
        print(f'total training time: {format_seconds(stats["total_s"])} '
              f'({stats["iters"]} iterations, validation excluded)')
        print()


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Plot curves / time statistics of mmengine scalar logs '
        '(vis_data/scalars.json) of classification, detection and segmentation runs')
    sub = parser.add_subparsers(dest='task', required=True)
    plot = sub.add_parser('plot_curve', help='plot curves of the given keys')
    plot.add_argument('json_logs', nargs='+',
                      help='scalars.json files, or work dirs / timestamp dirs (the newest '
                      'scalars.json below is used)')
    plot.add_argument('--keys', nargs='+', default=['loss'],
                      help='keys to plot, one panel each: loss terms, lr, validation '
                      'metrics (e.g. loss lr accuracy/top1 coco/bbox_mAP mIoU); shell '
                      'patterns such as "loss*" select several (default: loss)')
    plot.add_argument('--title', help='title of the figure')
    plot.add_argument('--legend', nargs='+',
                      help='names of the runs, one per log (default: the work dir names), '
                      'or one per log and key')
    plot.add_argument('--backend', help='matplotlib backend (default: Agg with --out)')
    plot.add_argument('--style', default=None, help='matplotlib style, e.g. ggplot')
    plot.add_argument('--out', help='save the figure to this file (.png, .svg, .pdf) '
                      'instead of showing it')
    plot.add_argument('--window-size', default='',
                      help='figure size in inches, "W*H" (default: 7 wide, 2.2 per key)')
    plot.add_argument('--dpi', type=int, default=100, help='resolution of a saved PNG')
    time = sub.add_parser('cal_train_time',
                          help='average s/iter, slowest / fastest epoch, total time')
    time.add_argument('json_logs', nargs='+',
                      help='scalars.json files, or work dirs / timestamp dirs')
    time.add_argument('--include-outliers', action='store_true',
                      help='include the first record of every epoch in the epoch means')
    args = parser.parse_args(argv)
    if getattr(args, 'window_size', '') and not re.fullmatch(r'[\d.]+\*[\d.]+',
                                                             args.window_size):
        parser.error(f'--window-size must be "W*H", got {args.window_size!r}')
    return args


def main(argv=None):
    args = parse_args(argv)
    args.paths = [find_scalars(p) for p in args.json_logs]
    logs = [load_scalars(p) for p in args.paths]
    if args.task == 'plot_curve':
        plot_curve(logs, args)
    else:
        cal_train_time(logs, args)


if __name__ == '__main__':
    main()
