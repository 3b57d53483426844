"""tools/analysis/analyze_logs.py: curves and time statistics from mmengine's scalars.json,
on tiny real runs of the three demo configs (fixture ``demo_runs``) and on hand-made logs
whose answers are known."""
import json
import os.path as osp

import cv2
import numpy as np
import pytest
from helpers import load_tool, run_tool

analyze = load_tool('tools/analysis/analyze_logs.py')
METRIC = {'cls': 'accuracy/top1', 'det': 'coco/bbox_mAP', 'seg': 'mIoU'}


def records(work_dir):
    path = analyze.find_scalars(work_dir)
    with open(path) as f:
        return path, [json.loads(line) for line in f if line.strip()]


@pytest.mark.parametrize('task', ['cls', 'det', 'seg'])
def test_load_scalars_of_a_real_run(demo_runs, task):
    path, lines = records(demo_runs[task])
    assert path.endswith(osp.join('vis_data', 'scalars.json'))
    log = analyze.load_scalars(path)
    assert len(log['train']) + len(log['val']) == len(lines)
    assert len(log['train']) == 4  # 4 iterations, each logged
    assert all('loss' in r and 'lr' in r for r in log['train'])
    assert len(log['val']) == 2 and all(METRIC[task] in r for r in log['val'])
    per_epoch = analyze.iters_per_epoch(log['train'])
    assert per_epoch == (None if task == 'seg' else 2)


@pytest.mark.parametrize('task', ['cls', 'det', 'seg'])
def test_plot_curve_cli(demo_runs, task, tmp_path):
    out = str(tmp_path / f'{task}.png')
    proc = run_tool('tools/analysis/analyze_logs.py', 'plot_curve', demo_runs[task],
                    '--keys', 'loss', 'lr', METRIC[task], '--out', out)
    assert 'loss: 4 points' in proc.stdout
    assert f'{METRIC[task]}: 2 points' in proc.stdout
    image = cv2.imread(out)
    assert image.shape == (700, 700, 3)  # 7 inches wide, 2.2 per panel + 0.4, at 100 dpi
    assert (image < 128).any(axis=-1).mean() > 0.01  # axes, curves, text drawn


def test_runs_overlaid_with_legends(demo_runs):
    paths = [analyze.find_scalars(demo_runs[t]) for t in ('cls', 'det', 'seg')]
    logs = [analyze.load_scalars(p) for p in paths]
    keys = analyze.expand_keys(['loss*', 'lr'], logs, paths)
    # 'loss*': the total 'loss' of every task and SSD's loss_cls / loss_bbox (mmseg's
    # terms are decode.loss_ce / aux.loss_ce), in sorted order, then 'lr'.
    assert keys[0] == 'loss' and {'loss_cls', 'loss_bbox'} <= set(keys) and keys[-1] == 'lr'
    labels = [[name] * len(keys) for name in ('a', 'b', 'c')]
    fig = analyze.draw_curves(logs, keys, labels, paths)
    axes = fig.axes
    assert [ax.get_ylabel() for ax in axes] == keys
    loss_ax = axes[0]
    assert [line.get_label() for line in loss_ax.get_lines()] == ['a', 'b', 'c']
    assert [t.get_text() for t in loss_ax.get_legend().get_texts()] == ['a', 'b', 'c']
    # The drawn values are the logged ones; epoch-based runs are drawn against epochs.
    for line, log in zip(loss_ax.get_lines(), logs):
        np.testing.assert_allclose(line.get_ydata(), [r['loss'] for r in log['train']])
    cls_x = loss_ax.get_lines()[0].get_xdata()
    np.testing.assert_allclose(cls_x, [0.5, 1.0, 1.5, 2.0])
    seg_x = loss_ax.get_lines()[2].get_xdata()
    np.testing.assert_allclose(seg_x, [1, 2, 3, 4])
    # loss_cls exists only for the detector: one curve in that panel.
    assert [line.get_label() for line in axes[keys.index('loss_cls')].get_lines()] == ['b']
    import matplotlib.pyplot as plt
    plt.close(fig)


def test_svg_output_and_legend_per_curve(demo_runs, tmp_path):
    out = str(tmp_path / 'cmp.svg')
    run_tool('tools/analysis/analyze_logs.py', 'plot_curve', demo_runs['cls'],
             demo_runs['seg'], '--keys', 'loss', '--legend', 'cls loss', 'seg loss',
             '--title', 'two runs', '--out', out)
    with open(out) as f:
        assert f.read(200).lstrip().startswith('<?xml')
    # --legend must give one name per log, or one per log and key.
    proc = run_tool('tools/analysis/analyze_logs.py', 'plot_curve', demo_runs['cls'],
                    '--keys', 'loss', '--legend', 'a', 'b', '--out', out, check=False)
    assert proc.returncode != 0 and '--legend needs 1 names' in proc.stderr


def test_unknown_key_names_what_exists(demo_runs):
    proc = run_tool('tools/analysis/analyze_logs.py', 'plot_curve', demo_runs['seg'],
                    '--keys', 'accuracy/top1', '--out', 'x.png', check=False)
    assert proc.returncode != 0
    assert "no key 'accuracy/top1'" in proc.stderr and 'mIoU' in proc.stderr


def test_bad_lines_and_paths_are_clear_errors(tmp_path):
    bad = tmp_path / 'scalars.json'
    bad.write_text('{"loss": 1.0, "step": 1}\nnot json\n')
    with pytest.raises(ValueError, match=r'scalars.json:2: not a JSON line'):
        analyze.load_scalars(str(bad))
    empty = tmp_path / 'empty'
    empty.mkdir()
    with pytest.raises(FileNotFoundError, match='no scalars.json under'):
        analyze.find_scalars(str(empty))
    with pytest.raises(FileNotFoundError, match='log not found'):
        analyze.find_scalars(str(tmp_path / 'missing'))


def synthetic_log(tmp_path):
    """Two epochs of 4 iterations logged every 2, times known: epoch 1 logs 0.9 (start-up)
    then 0.2, epoch 2 logs 0.3 and 0.5; validation after each epoch."""
    lines = [dict(lr=0.1, loss=2.0, time=0.9, data_time=0.1, epoch=1, iter=2, step=2),
             dict(lr=0.1, loss=1.5, time=0.2, data_time=0.1, epoch=1, iter=4, step=4),
             {'accuracy/top1': 40.0, 'step': 1},
             dict(lr=0.05, loss=1.0, time=0.3, data_time=0.2, epoch=2, iter=6, step=6),
             dict(lr=0.05, loss=0.5, time=0.5, data_time=0.2, epoch=2, iter=8, step=8),
             {'accuracy/top1': 60.0, 'step': 2}]
    path = tmp_path / 'run' / '20240101_000000' / 'vis_data' / 'scalars.json'
    path.parent.mkdir(parents=True)
    path.write_text(''.join(json.dumps(line) + '\n' for line in lines))
    return str(path)


def test_train_time_statistics(tmp_path):
    log = analyze.load_scalars(synthetic_log(tmp_path))
    stats = analyze.train_time(log)
    assert stats['s_per_iter'] == pytest.approx((0.9 + 0.2 + 0.3 + 0.5) / 4)
    assert stats['iters'] == 8
    assert stats['total_s'] == pytest.approx(8 * 1.9 / 4)
    assert stats['data_time'] == pytest.approx(0.15)
    # without outliers each epoch's first record is left out: epoch 1 -> 0.2, 2 -> 0.5
    assert stats['epoch_times'] == pytest.approx({1: 0.2, 2: 0.5})
    assert stats['slowest'] == (2, pytest.approx(0.5))
    assert stats['fastest'] == (1, pytest.approx(0.2))
    assert stats['std'] == pytest.approx(0.15)
    with_outliers = analyze.train_time(log, include_outliers=True)
    assert with_outliers['epoch_times'] == pytest.approx({1: 0.55, 2: 0.4})
    assert with_outliers['slowest'][0] == 1


def test_curve_of_a_synthetic_log(tmp_path):
    log = analyze.load_scalars(synthetic_log(tmp_path))
    assert analyze.iters_per_epoch(log['train']) == 4
    xs, ys, unit = analyze.curve(log, 'loss')
    assert unit == 'epoch' and list(xs) == [0.5, 1.0, 1.5, 2.0] and list(ys) == [2, 1.5, 1, .5]
    xs, ys, _ = analyze.curve(log, 'accuracy/top1')
    assert list(xs) == [1, 2] and list(ys) == [40, 60]


@pytest.mark.parametrize('task', ['cls', 'det', 'seg'])
def test_cal_train_time_cli(demo_runs, task):
    proc = run_tool('tools/analysis/analyze_logs.py', 'cal_train_time', demo_runs[task])
    assert 'average iter time:' in proc.stdout
    assert '(4 iterations, validation excluded)' in proc.stdout
    assert ('slowest epoch' in proc.stdout) == (task != 'seg')


def test_cli_help():
    proc = run_tool('tools/analysis/analyze_logs.py', 'plot_curve', '--help')
    assert '--keys' in proc.stdout and '--legend' in proc.stdout and '--out' in proc.stdout
