"""Helpers shared by the tests (this folder is on sys.path through conftest.py)."""
import importlib.util
import os
import os.path as osp
import pathlib
import shutil
import subprocess
import sys

from mmengine.registry import MODELS, init_default_scope

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
# torch threads of the tests and the tools they run: 1 (on a busy 2-core machine two
# threads per process can be many times slower); EMO_TEST_THREADS=2 checks the numerical
# tests with two (docs/testing.md)
THREADS = os.environ.get('EMO_TEST_THREADS', '1')


def load_tool(relpath):
    """Import a script of ``tools/`` (they are not a package) as a module."""
    name = osp.splitext(osp.basename(relpath))[0]
    spec = importlib.util.spec_from_file_location(name, osp.join(REPO, relpath))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


_SERVER = None


def _tool_server():
    """This process's ``tool_server.py`` (started on first use; ends with this process)."""
    global _SERVER
    if _SERVER is None or _SERVER.poll() is not None:
        _SERVER = subprocess.Popen(
            [sys.executable, osp.join(REPO, 'tests', 'tool_server.py')], cwd=REPO,
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
            env=dict(os.environ, OMP_NUM_THREADS=THREADS, PYTHONUNBUFFERED='1'))
    return _SERVER


def _read_reply(server, timeout):
    import json
    import select
    if not select.select([server.stdout], [], [], timeout)[0]:
        return None
    line = server.stdout.readline()
    assert line, 'tests/tool_server.py died'
    return json.loads(line)


class ToolProcess:
    """A tool started by ``start_tool``: ``pid``, ``poll()``, ``kill()``, ``wait()`` and
    ``returncode`` as for a ``subprocess.Popen``."""

    def __init__(self, server, pid, args):
        self.server, self.pid, self.args, self.returncode = server, pid, args, None

    def poll(self, timeout=0):
        if self.returncode is None:
            reply = _read_reply(self.server, timeout)
            if reply is not None:
                self.returncode = reply['rc']
        return self.returncode

    def wait(self, timeout=None):
        import subprocess
        if self.poll(timeout) is None:
            raise subprocess.TimeoutExpired(self.args, timeout)
        return self.returncode

    def send_signal(self, sig):
        if self.returncode is None:
            try:
                os.kill(self.pid, sig)
            except ProcessLookupError:  # ended, not yet polled
                pass

    def kill(self):
        import signal
        self.send_signal(signal.SIGKILL)


def start_tool(relpath, *args, stdout, stderr=None, cwd=REPO, env=None):
    """Start a script of ``tools/`` as ``python tools/x.py args`` (one torch thread) in a
    fork of ``tests/tool_server.py``, which has the stack imported already (a fresh
    interpreter spends ~7 s of CPU importing it); its stdout goes to the file
    ``stdout``, its stderr to ``stderr`` (default: the same file); ``env``: variables
    added to its environment. One at a time per test process. Returns a ``ToolProcess``."""
    import json
    path, args = osp.join(REPO, relpath), [str(a) for a in args]
    env = dict(os.environ, OMP_NUM_THREADS=THREADS, PYTHONUNBUFFERED='1', **(env or {}))
    server = _tool_server()
    server.stdin.write(json.dumps(dict(path=path, args=args, cwd=str(cwd), env=env,
                                       out=str(stdout), err=str(stderr or stdout))) + '\n')
    server.stdin.flush()
    return ToolProcess(server, _read_reply(server, 60)['pid'], [path, *args])


def run_tool(relpath, *args, cwd=REPO, check=True, timeout=600, env=None):
    """Run a script of ``tools/`` as ``python tools/x.py args`` in its own process (a
    fork, see ``start_tool``; ``EMO_TEST_SUBPROCESS=1``: a plain subprocess), with one
    torch thread (on a busy 2-core machine two are many times slower); returns a
    ``CompletedProcess`` (text stdout, stderr); with ``check`` a failure shows its output."""
    import tempfile
    path, args = osp.join(REPO, relpath), [str(a) for a in args]
    if os.environ.get('EMO_TEST_SUBPROCESS') == '1':
        proc = subprocess.run([sys.executable, path, *args], cwd=cwd, capture_output=True,
                              text=True, timeout=timeout,
                              env=dict(os.environ, OMP_NUM_THREADS=THREADS, PYTHONUNBUFFERED='1',
                                       **(env or {})))
    else:
        with tempfile.TemporaryDirectory() as tmp:
            out, err = osp.join(tmp, 'out'), osp.join(tmp, 'err')
            tool = start_tool(relpath, *args, stdout=out, stderr=err, cwd=cwd, env=env)
            try:
                tool.wait(timeout)
            finally:
                if tool.returncode is None:
                    tool.kill()
                    tool.wait(60)
            with open(out) as f, open(err) as g:
                proc = subprocess.CompletedProcess([sys.executable, path, *args],
                                                   tool.returncode, f.read(), g.read())
    if check:
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc


def shared_dir(tmp_path_factory, name, make):
    """``<root>/name``, filled by ``make(path)`` by the first process that asks for it;
    the others wait on its lock and reuse it. The root is ``$EMO_TEST_SHARED`` when set
    (``make test`` sets a fresh folder for its two passes, so the lower-capability pass
    reuses the demo data, trainings and exported files of the first one), else this run's
    temp folder (shared by its xdist workers).

    What goes here is made once per ``make test``: data, checkpoints and exported graphs,
    i.e. what a later pass only reads; every comparison runs in each pass."""
    from filelock import FileLock
    root = os.environ.get('EMO_TEST_SHARED')
    if root:
        root = pathlib.Path(root)
    else:
        root = tmp_path_factory.getbasetemp()
        if os.environ.get('PYTEST_XDIST_WORKER'):
            root = root.parent  # the folder of this run's workers
    path = root / name
    path.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(path) + '.lock'):
        if not (path / '.done').exists():
            if path.exists():  # a make() that failed half-way
                shutil.rmtree(path)
            path.mkdir(parents=True)
            make(str(path))
            (path / '.done').touch()
    return str(path)


def assert_nested_equal(a, b, where='', n=None):
    """Nested dicts / lists of tensors, arrays and plain values are equal: tensors and
    arrays bitwise (same dtype) or, given ``n``, floating ones within the derived float32
    bound of accumulation length ``n`` (``float32_bound``); anything else exactly.
    ``where`` names the first difference."""
    import numpy as np
    import torch
    if isinstance(a, dict):
        assert a.keys() == b.keys(), where
        for key in a:
            assert_nested_equal(a[key], b[key], f'{where}.{key}', n)
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            assert_nested_equal(x, y, f'{where}[{i}]', n)
    elif isinstance(a, (torch.Tensor, np.ndarray)):
        x, y = torch.as_tensor(a), torch.as_tensor(b)
        if n is None or not x.is_floating_point():
            assert x.dtype == y.dtype and torch.equal(x, y), where
        else:
            assert_close_derived(y, x, n, what=where)
    else:
        assert a == b, where


# The derived float32 bound (the rule, ``accumulation_length``, ``float32_bound``) lives in
# emo/utils/numerics.py, which the export tools' --verify uses too; the assertions and
# the tie rules for decisions are here. Those names are served from there on first use
# (``from helpers import float32_bound``): importing emo costs ~7 s, which the xdist
# controller, loading this file through conftest.py, would pay before starting workers.
NUMERICS = ('EPS32', 'TAIL', 'accumulation_length', 'float32_bound')


def __getattr__(name):
    if name in NUMERICS:
        from emo.utils import numerics
        return getattr(numerics, name)
    raise AttributeError(f'module {__name__!r} has no attribute {name!r}')


def assert_close_derived(got, reference, n, linear=False, what=''):
    """``|got - reference| <= float32_bound(reference, n)`` elementwise (same shape);
    returns the bound. The message states the bound, its n and the largest difference.
    Sequences of tensors are compared item by item, each with its own magnitude."""
    import torch
    if isinstance(reference, (list, tuple)):
        assert len(got) == len(reference), f'{what}: {len(got)} != {len(reference)} outputs'
        return [assert_close_derived(g, r, n, linear, f'{what}[{i}]')
                for i, (g, r) in enumerate(zip(got, reference))]
    got, reference = torch.as_tensor(got), torch.as_tensor(reference)
    assert got.shape == reference.shape, f'{what}: shape {got.shape} != {reference.shape}'
    from emo.utils.numerics import float32_bound
    bound = float32_bound(reference, n, linear)
    diff = (got.double() - reference.double()).abs().max().item() if got.numel() else 0.0
    assert diff <= bound, (f'{what}: max |diff| {diff:.3g} > derived float32 bound '
                           f'{bound:.3g} (n={n}, scale={reference.abs().max().item():.3g})')
    return bound


def decisions_equal_outside_ties(got, reference, bound, dim=-1, min_decided=0.5):
    """The argmax over ``dim`` of ``got`` equals that of ``reference`` wherever it is not
    a near-tie: where the reference's top value beats every other by more than
    ``2 * bound`` (each side is within ``bound`` of the truth, so no such pair can swap).
    Asserts that at least ``min_decided`` of the decisions are not ties (else the test
    would assert nothing) and returns the decided fraction."""
    import torch
    top2 = reference.topk(2, dim=dim).values
    margin = top2.select(dim, 0) - top2.select(dim, 1)
    decided = margin > 2 * bound
    frac = decided.float().mean().item()
    assert frac >= min_decided, f'only {frac:.1%} of the decisions are not near-ties'
    same = got.argmax(dim) == reference.argmax(dim)
    assert same[decided].all(), (
        f'{(~same[decided]).sum().item()} decisions differ outside near-ties '
        f'(margin > 2 * {bound:.3g})')
    return frac


def _iou_range(boxes, delta):
    """Pairwise IoU of ``boxes`` (N, 4 numpy, x1y1x2y2) when every coordinate may move by
    up to ``delta`` (N,): (low, high), each (N, N)."""
    import numpy as np
    d = np.maximum(delta[:, None], delta[None])  # every edge of either box moves <= d
    lt = np.maximum(boxes[:, None, :2], boxes[None, :, :2])
    rb = np.minimum(boxes[:, None, 2:], boxes[None, :, 2:])
    wh = rb - lt
    wh_a = boxes[:, 2:] - boxes[:, :2]

    def area(w, h):
        return np.clip(w, 0, None) * np.clip(h, 0, None)

    inter_hi = area(wh[..., 0] + 2 * d, wh[..., 1] + 2 * d)
    inter_lo = area(wh[..., 0] - 2 * d, wh[..., 1] - 2 * d)
    a_hi = area(wh_a[:, None, 0] + 2 * d, wh_a[:, None, 1] + 2 * d)
    a_lo = area(wh_a[:, None, 0] - 2 * d, wh_a[:, None, 1] - 2 * d)
    b_hi = area(wh_a[None, :, 0] + 2 * d, wh_a[None, :, 1] + 2 * d)
    b_lo = area(wh_a[None, :, 0] - 2 * d, wh_a[None, :, 1] - 2 * d)
    union_lo = np.maximum(a_lo + b_lo - inter_hi, np.maximum(a_lo, b_lo))
    union_hi = a_hi + b_hi - inter_lo
    high = np.where(union_lo > 0, inter_hi / np.maximum(union_lo, 1e-30), 1.0)
    low = inter_lo / np.maximum(union_hi, 1e-30)
    return low, high


def _dense_head_decisions(head, cls_scores, bbox_preds, bounds, img_meta):
    """The candidates of one image as ``head.predict_by_feat`` makes them (per level:
    scores, score threshold, ``nms_pre`` top-k, decode; then ``min_bbox_size``, class-wise
    NMS, ``max_per_img``), each with its score and box tolerances and its fate: 1 surely
    in the result, -1 surely not, 0 a near-tie within the tolerances.

    ``cls_scores``/``bbox_preds``: per level (C, H, W) tensors of one image; ``bounds``:
    per level (cls bound, bbox bound) on |other computation - these|."""
    import itertools
    import math

    from emo.utils.numerics import EPS32

    import numpy as np
    import torch
    from mmdet.models.utils import filter_scores_and_topk
    cfg = head.test_cfg
    thr, nms_pre = cfg.get('score_thr', 0), cfg.get('nms_pre', -1)
    sizes = [c.shape[-2:] for c in cls_scores]
    priors = head.prior_generator.grid_priors(sizes, device=cls_scores[0].device)
    cand = dict(scores=[], labels=[], boxes=[], s_tol=[], b_tol=[], undecided=[])
    for cls, reg, pri, (b_cls, b_reg) in zip(cls_scores, bbox_preds, priors, bounds):
        reg = reg.permute(1, 2, 0).reshape(-1, head.bbox_coder.encode_size)
        cls = cls.permute(1, 2, 0).reshape(-1, head.cls_out_channels)
        all_scores = cls.sigmoid() if head.use_sigmoid_cls else cls.softmax(-1)[:, :-1]
        scores, labels, _, kept = filter_scores_and_topk(all_scores, thr, nms_pre,
                                                         dict(reg=reg, priors=pri))

        def tol_of(p, b=b_cls):
            p = torch.as_tensor(p, dtype=torch.float64)
            if head.use_sigmoid_cls:  # logits move by <= b: sigmoid(logit(p) +- b) - p
                z = torch.logit(p)
                tol = torch.maximum((z + b).sigmoid() - p, p - (z - b).sigmoid())
            else:  # log-softmax moves by <= 2 b: p * (exp(2 b) - 1)
                tol = p * math.expm1(2 * b)
            return (tol + 4 * EPS32).float()

        s_tol = tol_of(scores)
        # in or out by the threshold and the top-k cut: a near-tie if within tolerance
        # of the threshold or of the first score the cut leaves out
        valid = all_scores[all_scores > thr].sort(descending=True).values
        cut = max(valid[nms_pre].item() if 0 < nms_pre < len(valid) else thr, thr)
        undecided = scores <= cut + s_tol + tol_of(cut)
        decode = lambda r: head.bbox_coder.decode(  # noqa: E731
            kept['priors'], r, max_shape=img_meta['img_shape'])
        boxes = decode(kept['reg'])
        # each coordinate is monotone in each delta (and in the clamp): its extremes
        # over deltas +- b_reg lie at the 16 corners
        moved = torch.stack([decode(kept['reg'] + b_reg * torch.tensor(sign))
                             for sign in itertools.product([-1.0, 1.0], repeat=4)])
        b_tol = (moved - boxes).abs().amax(dim=(0, 2)) + 4 * EPS32 * boxes.abs().amax(1)
        for key, value in zip(cand, (scores, labels, boxes, s_tol,
                                     b_tol, undecided)):
            cand[key].append(value)
    c = {k: torch.cat(v).numpy() for k, v in cand.items()}
    c.update({k: c[k].astype(np.float64) for k in ('scores', 'boxes', 's_tol', 'b_tol')})
    undecided = c.pop('undecided').astype(bool)
    w, h = (c['boxes'][:, 2:] - c['boxes'][:, :2]).T
    fate = np.zeros(len(w), dtype=int)
    if cfg.get('min_bbox_size', -1) >= 0:
        m = cfg.min_bbox_size
        near = (np.abs(w - m) <= 2 * c['b_tol']) | (np.abs(h - m) <= 2 * c['b_tol'])
        undecided |= near
        fate[~near & ((w <= m) | (h <= m))] = -1
    # class-wise NMS (mmcv batched_nms: boxes shifted by label * (max coordinate + 1),
    # suppressed when IoU > threshold), in score order; the shift rounds coordinates by
    # up to an ulp of the shifted value
    iou_thr = cfg.nms.iou_threshold
    shift = np.spacing(np.float32(2 * head.num_classes * (c['boxes'].max() + 1)))
    order = np.argsort(-c['scores'], kind='stable')
    for label in np.unique(c['labels']):
        idx = order[(c['labels'][order] == label) & (fate[order] >= 0)]
        low, high = _iou_range(c['boxes'][idx], c['b_tol'][idx] + shift)
        s, tol = c['scores'][idx], c['s_tol'][idx]
        for a, i in enumerate(idx):
            if undecided[i]:
                continue  # fate 0; it may still suppress the boxes after it
            could = (np.arange(len(idx)) != a) & (high[a] > iou_thr) & (s >= s[a] - tol - tol[a])
            tie = could & (np.abs(s - s[a]) <= tol + tol[a])
            before, fates = could & ~tie, fate[idx]
            if (before & (fates == 1) & (low[a] > iou_thr)).any():
                fate[i] = -1  # a box surely kept surely suppresses it
            elif tie.any() or (before & (fates >= 0)).any():
                fate[i] = 0
            else:
                fate[i] = 1
    # max_per_img: surely in if it makes the cut even with every box that may survive
    # ranked above it, surely out if boxes sure to survive and to rank above fill it
    k = cfg.get('max_per_img', -1)
    if k > 0:
        s, tol, nms_fate = c['scores'], c['s_tol'], fate.copy()
        for i in np.nonzero(nms_fate >= 0)[0]:
            if ((nms_fate == 1) & (s > s[i] + tol + tol[i])).sum() >= k:
                fate[i] = -1
            elif ((nms_fate >= 0) & (s >= s[i] - tol - tol[i])).sum() - 1 >= k:
                fate[i] = min(fate[i], 0)
    return c, fate


def _instances(results, b):
    import numpy as np
    r = results[b]
    r = getattr(r, 'pred_instances', r)
    return dict(boxes=r.bboxes.double().numpy(), scores=r.scores.double().numpy(),
                labels=r.labels.numpy()), np.ones(len(r), dtype=bool)


def detections_equal_outside_ties(head, ref_outs, got_outs, bounds, img_metas, ref_results,
                                  got_results, min_decided=1):
    """The detections of a dense ``head`` from two computations of its raw outputs agree
    wherever they are not near-ties; returns (decided, detections) per image.

    ``ref_outs``/``got_outs``: ``cls_scores + bbox_preds`` (per level (B, C, H, W), as
    ``predict_by_feat`` takes them), already shown to differ by at most ``bounds`` (one
    float per tensor, same order); ``ref_results``/``got_results``: the detections (per
    image, ``InstanceData`` or a data sample) post-processed from each.

    The rule. A score p moves by at most s_tol(p) (``sigmoid(logit(p) +- bound) - p``
    through a sigmoid, ``p * (exp(2 bound) - 1)`` through a softmax), a box coordinate by
    at most b_tol (the decoder evaluated at deltas +- bound), an IoU within the range those
    give. Two scores are near-tied when they differ by at most the sum of their s_tol. A
    candidate's fate (in the result or not) is a near-tie when its score is near-tied with
    the score threshold or with the first score that ``nms_pre`` leaves out, its width or
    height within 2 b_tol of ``min_bbox_size``, a box of its class that may suppress it
    has a near-tied score, an IoU range across the NMS threshold or a near-tie fate
    itself, or its rank may cross ``max_per_img``. Every detection of either side
    whose fate is decided must be among the other side's detections with the same label,
    score within s_tol and box within b_tol; each side's detections include all its
    decided candidates and only candidates that are decided or near-ties (this checks the
    mirror of the post-processing). At least ``min_decided`` detections per image must
    be decided, else the comparison would assert little (random weights give dense,
    near-uniform scores: most fates are near-ties)."""
    import numpy as np
    levels = len(ref_outs) // 2
    bnd = list(zip(bounds[:levels], bounds[levels:]))
    counts = []
    for b, meta in enumerate(img_metas):
        sides = []
        for outs, results in ((ref_outs, ref_results), (got_outs, got_results)):
            o = [t[b] for t in outs]
            c, fate = _dense_head_decisions(head, o[:levels], o[levels:], bnd, meta)
            r, _ = _instances(results, b)
            sides.append((c, fate, r))
            # the mirror agrees with the head's own post-processing
            key = lambda bx, lb: tuple(np.round(bx, 4)) + (int(lb), )  # noqa: E731
            out = {key(bx, lb) for bx, lb in zip(r['boxes'], r['labels'])}
            cands = [key(bx, lb) for bx, lb in zip(c['boxes'], c['labels'])]
            assert all(cands[i] in out for i in np.nonzero(fate == 1)[0]), \
                f'image {b}: a candidate decided in is not in the detections'
            assert out <= {cands[i] for i in np.nonzero(fate >= 0)[0]}, \
                f'image {b}: a detection is not among the candidates decided in or tied'
        for (c, fate, _), (_, _, r) in [(sides[0], sides[1]), (sides[1], sides[0])]:
            for i in np.nonzero(fate == 1)[0]:
                ok = ((r['labels'] == c['labels'][i]) &
                      (np.abs(r['scores'] - c['scores'][i]) <= c['s_tol'][i]) &
                      (np.abs(r['boxes'] - c['boxes'][i]).max(1) <= c['b_tol'][i]))
                assert ok.any(), (
                    f'image {b}: detection (label {c["labels"][i]}, score '
                    f'{c["scores"][i]:.6f}, box {c["boxes"][i].round(3)}) is decided (no '
                    f'near-tie) on one side but missing on the other')
        fate = sides[0][1]
        decided = int((fate == 1).sum())
        assert decided >= min_decided, f'image {b}: only {decided} detections decided'
        counts.append((decided, len(sides[0][2]['labels'])))
    return counts


# INT8 comparisons (tests/test_deployment/test_quantize.py's docstring derives the bound):
# the probe model, each backend's count of quantized layers on the longest path, the check.
def int8_probe(tmp_path_factory, name, cfg, randomize, num):
    """(cfg, deploy-form model, calibration inputs (N, 3, H, W), labels, checkpoint) of
    the INT8 tests (tests/test_deployment/test_quantize.py's docstring): the demo
    classifier of ``cfg`` (the 4-class shape set) with the weights of ``randomize(model,
    0)``, the BN statistics of ``num`` images of its val set and a linear-probe head
    fitted on them; made once per ``make test`` (``shared_dir`` ``name``), seeded."""
    import torch
    from torch.nn.modules.batchnorm import _BatchNorm

    from emo.apis import build_model_from_cfg
    from emo.deployment.quantize import calibration_images, calibration_inputs

    def make(out):
        torch.manual_seed(0)
        model = build_model_from_cfg(cfg)
        randomize(model, 0)
        images = calibration_images(cfg, 'val', num)
        inputs = torch.cat(calibration_inputs(cfg, images, model))
        labels = torch.tensor([['circle', 'cross', 'square', 'triangle'].index(
            osp.basename(osp.dirname(p))) for p in images])
        # BN statistics of these images (as a trained model's fit its activations); with
        # randomize_'s alone the features hardly depend on the image
        for m in model.modules():
            if isinstance(m, _BatchNorm):
                m.momentum = 1.0
        model.train()
        with torch.no_grad():
            model(inputs, mode='tensor')
        model.eval()
        with torch.no_grad():
            feats = model.neck(model.backbone(inputs))[-1]  # (N, C)
            # ridge-regression head: logits ~ 4 * one-hot(label) - 1 on these images; the
            # ridge term keeps it from amplifying feature directions that barely vary
            a = torch.cat([feats, torch.ones(len(feats), 1)], 1).double()
            target = 4.0 * torch.nn.functional.one_hot(labels, 4).double() - 1
            gram = a.T @ a
            gram += 0.01 * gram.trace() / len(gram) * torch.eye(len(gram), dtype=gram.dtype)
            sol = torch.linalg.solve(gram, a.T @ target).float()
            model.head.fc.weight.copy_(sol[:-1].T)
            model.head.fc.bias.copy_(sol[-1])
        torch.save(dict(state_dict=model.state_dict()), osp.join(out, 'probe.pth'))
        torch.save(dict(inputs=inputs, labels=labels), osp.join(out, 'inputs.pt'))

    out = shared_dir(tmp_path_factory, name, make)
    ckpt = osp.join(out, 'probe.pth')
    data = torch.load(osp.join(out, 'inputs.pt'))
    model = build_model_from_cfg(cfg, checkpoint=ckpt, deploy=True, strict=True)
    return cfg, model, data['inputs'], data['labels'], ckpt


def int8_pte(tmp_path_factory, name, probe, shape):
    """The batch-1 INT8 ExecuTorch program of ``probe`` (:func:`int8_probe`) at ``shape``
    (its calibration size), made once per ``make test`` (``shared_dir`` ``name``)."""
    import copy

    from emo.deployment import export_wrapper
    from emo.deployment.quantize import quantize_executorch
    model, inputs = probe[1:3]

    def make(out):
        quantize_executorch(export_wrapper(copy.deepcopy(model)), osp.join(out, 'int8.pte'),
                            list(inputs.split(1)), shape,
                            metadata=dict(task='classification'), max_batch=1)

    return osp.join(shared_dir(tmp_path_factory, name, make), 'int8.pte')


def layer_steps(weight_span):
    """A quantized layer's error budget in steps of the logits' INT8 grid (range / 255):
    half a step of its 8-bit input (1/510 of the range, 0.5 step) plus half a step of its
    weights, whose integer values span ``weight_span`` (254 for 8-bit weights, 127 for
    7-bit ones: twice the relative step)."""
    return 0.5 + 127.5 / weight_span


def onnx_depth(path):
    """(quantized Conv / MatMul / Gemm nodes (an input from a DequantizeLinear), their
    error budget in steps (``layer_steps``)) on the path to the output of the largest
    budget; a weight is an integer initializer, an activation input spans 255."""
    import onnx
    from onnx import numpy_helper
    graph = onnx.load(path).graph
    producer = {o: n for n in graph.node for o in n.output}
    init = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    path_of = {}  # tensor -> (budget, depth) of its worst path
    for n in graph.node:  # ONNX nodes are topologically sorted
        budget, d = max((path_of.get(i, (0.0, 0)) for i in n.input), default=(0.0, 0))
        dq = [producer[i] for i in n.input
              if i in producer and producer[i].op_type == 'DequantizeLinear']
        if n.op_type in ('Conv', 'MatMul', 'Gemm') and dq:
            spans = [int(init[q.input[0]].max()) - int(init[q.input[0]].min())
                     for q in dq if q.input[0] in init]
            budget, d = budget + layer_steps(min(spans, default=255)), d + 1
        for o in n.output:
            path_of[o] = budget, d
    budget, d = path_of[graph.output[0].name]
    return d, budget


def openvino_depth(path):
    """(Convolutions / MatMuls with a FakeQuantize input, their error budget in steps)
    on the path of the largest budget; the weights are NNCF's integer constants."""
    import openvino as ov
    model = ov.Core().read_model(path)

    def weight_span(output):  # up Convert / Subtract / Multiply / Reshape to the ints
        node = output.get_node()
        while node.get_type_name() != 'Constant' and node.inputs():
            node = node.input(0).get_source_output().get_node()
        if node.get_type_name() == 'Constant' and node.get_element_type().get_type_name() in (
                'i8', 'u8'):
            data = node.get_data()
            return int(data.max()) - int(data.min())
        return 255  # an activation

    path_of = {}
    for op in model.get_ordered_ops():
        srcs = [i.get_source_output() for i in op.inputs()]
        budget, d = max((path_of[s.get_node().get_friendly_name()] for s in srcs),
                        default=(0.0, 0))
        if op.get_type_name() in ('Convolution', 'GroupConvolution', 'MatMul') and any(
                s.get_node().get_type_name() == 'FakeQuantize' for s in srcs):
            budget, d = budget + layer_steps(min(weight_span(s) for s in srcs)), d + 1
        path_of[op.get_friendly_name()] = budget, d
    return max(path_of.values())[::-1]


def assert_int8_close(got, ref, depth, budget=None):
    """RMS |INT8 - fp32| <= ``budget`` steps of the fp32 logits' INT8 step (range / 255)
    (default ``depth``: 8-bit weights and inputs, one step per layer), and equal top-1
    outside near-ties of that bound (see the module docstring)."""
    budget = depth if budget is None else budget
    step = (ref.max() - ref.min()).item() / 255
    rms = (got - ref).pow(2).mean().sqrt().item()
    assert depth >= 10, depth  # the backbone is quantized, not just the head
    assert rms <= budget * step, (f'INT8 logits off by {rms:.3g} RMS > {budget:.1f} steps '
                                  f'of {step:.3g} ({depth} layers)')
    decisions_equal_outside_ties(got, ref, bound=budget * step, dim=1)


def program_depth(module, shape):
    """Convolutions / linears (each one XNNPACKQuantizer quantizes) on the longest path
    of ``module``'s exported graph."""
    import torch

    from emo.deployment.program import export_program
    depth = {}
    for n in export_program(module, shape, dynamic_batch=False).graph.nodes:
        d = max((depth.get(a, 0) for a in n.all_input_nodes), default=0)
        in_ln = any('ChannelLayerNorm' in str(t) for _, t in
                    (n.meta.get('nn_module_stack') or {}).values())  # kept float
        depth[n] = d + (n.target in (torch.ops.aten.conv2d.default,
                                     torch.ops.aten.linear.default) and not in_ln)
    return max(depth.values())


def _probe_reference(model, inputs):
    import torch
    with torch.no_grad():
        return model(inputs, mode='tensor')


def check_int8_onnxruntime(probe, int8):
    """The INT8 ``.onnx`` of ``probe`` (:func:`int8_probe`): logits within the bound
    (:func:`assert_int8_close`) on the calibration images, and Conv / MatMul / Gemm all
    QLinear (INT8) kernels."""
    import torch

    from emo.deployment import ONNXInferencer
    from emo.deployment.quantize import float_ops_onnx
    cfg, model, inputs, labels, _ = probe
    ref = _probe_reference(model, inputs)
    assert (ref.argmax(1) == labels).float().mean() > 0.9  # the probe fits its images
    sess = ONNXInferencer(int8, cfg).runtime.session
    got = torch.from_numpy(sess.run(None, {'input': inputs.numpy()})[0])
    assert_int8_close(got, ref, *onnx_depth(int8))
    float_ops = float_ops_onnx(int8)
    assert not {'Conv', 'MatMul', 'Gemm'} & set(float_ops), float_ops


def check_int8_openvino(probe, xml):
    """The NNCF INT8 IR of ``probe``: logits within the bound, most convolutions in INT8
    (NNCF leaves some in float, e.g. the stem's) and the float ones reported."""
    import collections

    import torch

    from emo.deployment.quantize import float_ops_openvino, openvino_model
    _, model, inputs, _, _ = probe
    ref = _probe_reference(model, inputs)
    compiled = openvino_model(xml)
    got = torch.from_numpy(compiled(inputs.numpy())[compiled.outputs[0]])
    assert_int8_close(got, ref, *openvino_depth(xml))
    precisions = collections.Counter(
        op.get_rt_info()['runtimePrecision'].astype(str).lower()
        for op in compiled.get_runtime_model().get_ops()
        if op.get_rt_info()['layerType'].astype(str) == 'Convolution')
    assert precisions['i8'] + precisions['u8'] > precisions['f32'], precisions
    assert float_ops_openvino(compiled).get('Convolution', 0) == precisions['f32']


def check_int8_executorch(probe, path, shape):
    """The XNNPACK INT8 ``.pte`` of ``probe`` at ``shape``, a batch-1 program: logits
    within the bound, convolutions and linears in INT8 but the LayerNorms' two mean
    convolutions each, the attention float. Returns the task wrapper the program was
    made from (after :func:`~emo.deployment.executorch.xnnpack_friendly`)."""
    import copy
    import json

    import torch

    from emo.deployment import export_wrapper
    from emo.deployment.executorch import (ChannelLayerNorm, ExecuTorchModel,
                                           xnnpack_friendly)
    from emo.deployment.quantize import float_ops_executorch
    _, model, inputs, _, _ = probe
    ref = _probe_reference(model, inputs)
    wrapper = export_wrapper(copy.deepcopy(model))
    xnnpack_friendly(wrapper)  # as quantize_executorch changed its copy
    side = json.load(open(path + '.json'))
    assert side['task'] == 'classification' and json.loads(side['shape']) == list(shape)
    runtime = ExecuTorchModel(path)
    got = torch.cat([runtime(x)[0] for x in inputs.split(1)])
    assert_int8_close(got, ref, program_depth(wrapper, shape))
    float_ops = float_ops_executorch(path)
    lns = sum(isinstance(m, ChannelLayerNorm) for m in wrapper.modules())
    assert lns > 0 and float_ops.get('conv2d', 0) == 2 * lns, (lns, float_ops)
    assert 'linear' not in float_ops, float_ops
    assert float_ops.get('scaled_dot_product_attention', 0) > 0
    return wrapper
