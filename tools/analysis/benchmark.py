"""Throughput and batch-1 latency of configs of this project, mmpretrain peers and,
with ``--reference``, a reference EMO network, timed side by side.

All models are built first, then timed in rounds: every round times each model in turn
(``--iters`` passes at ``--batch-size``, then ``--latency-iters`` passes at batch 1), so
drift of a shared machine hits all of them alike. Figures are min / median / max over the
rounds; parameters and FLOPs (``emo.utils.model_complexity``, at batch 1) come with them.
Every row gets its speed relative to a baseline row ("x ref", > 1 is faster):

* with ``--reference FILE.py`` (e.g. ``tests/reference_emo.py``, the literal released
  network), each EMO variant brings its reference row, built from that file (same
  variant, window and input size; ``--deploy`` and ``--channels-last`` never apply to
  it: it is the network as released), and is compared with it; peers and non-EMO
  configs with the reference of the first EMO variant (with peers only: of EMO-1M);
* without it there are no reference rows and every row is compared with the first row
  (the first CONFIG, else the first peer) of the same backend.

What runs: a classification config, its ``mode='tensor'`` forward (logits); a detection or
segmentation config, ``--part backbone`` (the backbone alone) or ``--part model`` (the
whole ``mode='tensor'`` forward: detector head maps before NMS, segmentor decode head), at
the config's own test size unless ``--shape`` is given (the size ``get_flops.py`` uses).
The reference row of a dense config is the reference backbone (its feature maps). Peers
(``--peers``) are mmpretrain model names or config files, built by
``mmpretrain.get_model`` without pretrained weights, run at ``--shape`` (default 224).
``--train`` times training steps: forward, loss (cross-entropy on random labels for
logits; the mean of all outputs for dense outputs), backward and an AdamW step.

The ``--reference`` file is imported as a module and must define ``ReferenceEMO(variant,
num_classes, window_size, attn_pre)``: the classifier (``norm`` and ``head`` modules) with
``features(x)`` returning the stem's and the four stages' maps.

Examples:
    python tools/analysis/benchmark.py configs/classification/emo-1m_8xb256_in1k.py \\
        --reference tests/reference_emo.py \\
        --peers edgenext-xxsmall_3rdparty_in1k mobilenet-v3-large_8xb128_in1k --threads 2
    python tools/analysis/benchmark.py configs/classification/emo-*_8xb256_in1k.py \\
        --backend pytorch onnxruntime --deploy --out work_dirs/benchmark/ort.json
    python tools/analysis/benchmark.py configs/classification/emo-1m_8xb256_in1k.py \
        --peers edgenext-xxsmall_3rdparty_in1k --backend executorch openvino --deploy
    python tools/analysis/benchmark.py configs/detection/ssdlite_emo-1m_8xb24-600e_coco.py \\
        --part model --batch-size 8              # the whole detector at 320x320
    python tools/analysis/benchmark.py CONFIG --train --amp --channels-last --device cuda
"""
import argparse
import datetime
import importlib.util
import json
import os
import os.path as osp
import platform
import statistics
import subprocess
import sys
import tempfile
import time

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
sys.path.insert(0, REPO)  # run from a checkout

import torch  # noqa: E402
import torch.nn as nn  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from emo.apis import default_shape  # noqa: E402
from emo.apis.builder import TASKS  # noqa: E402
from emo.apis.launch import DictAction, add_shape_argument, load_config  # noqa: E402
from emo.deployment.registry import backend_names, get_backend  # noqa: E402
from emo.utils import keep_freed_memory, model_complexity  # noqa: E402


def get_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Throughput and batch-1 latency of configs, mmpretrain peers and a '
        'reference EMO, interleaved in one process')
    parser.add_argument('configs', nargs='*', metavar='CONFIG',
                        help='config files of this project (the default_scope picks the task)')
    parser.add_argument('--peers', nargs='+', default=[], metavar='NAME_OR_CONFIG',
                        help='mmpretrain model names (e.g. edgenext-xxsmall_3rdparty_in1k) '
                        'or config files (a path or mmpretrain::dir/file.py), built '
                        'without pretrained weights')
    parser.add_argument('--reference', metavar='FILE.py',
                        help='a Python file defining ReferenceEMO (e.g. '
                        'tests/reference_emo.py): each EMO config gets a reference row of '
                        'its variant and is compared with it; without it, rows are '
                        'compared with the first row')
    parser.add_argument('--part', choices=['backbone', 'model'], default='backbone',
                        help='detection / segmentation configs: the backbone alone or '
                        'the whole tensor forward (default: backbone)')
    parser.add_argument('--batch-size', type=int, default=32,
                        help='batch size of the throughput passes (default: 32)')
    add_shape_argument(parser, 'input size H W (or one number for a square); default: '
                       'each config\'s test size, 224 for peers')
    parser.add_argument('--threads', type=int,
                        help='torch intra-op threads (torch.set_num_threads) and ONNX '
                        'Runtime intra-op threads; default: torch\'s own choice')
    parser.add_argument('--device', choices=['cpu', 'cuda'], default='cpu',
                        help='cuda: synchronized around every timing (default: cpu)')
    parser.add_argument('--backend', nargs='+', choices=['pytorch'] + backend_names(True),
                        default=['pytorch'],
                        help='one or more (default: pytorch); the others (the registry of '
                        'emo.deployment.registry: onnxruntime, executorch, openvino, ...) '
                        'export every model to a temporary folder, one file per batch '
                        'size, and time it there through the backend\'s runtime model')
    parser.add_argument('--rounds', type=int, default=5,
                        help='timing rounds over all models; min / median / max are '
                        'over them (default: 5)')
    parser.add_argument('--warmup', type=int, default=3,
                        help='untimed passes per model and batch size before round 1; '
                        'at least one runs, to check that the model works (default: 3)')
    parser.add_argument('--iters', type=int, default=10,
                        help='timed passes of --batch-size per model and round '
                        '(default: 10)')
    parser.add_argument('--latency-iters', type=int, default=30,
                        help='timed batch-1 passes per model and round (default: 30)')
    parser.add_argument('--no-latency', action='store_true', help='skip the batch-1 passes')
    parser.add_argument('--train', action='store_true',
                        help='time training steps (forward, loss, backward, AdamW step) '
                        'in train mode; throughput only')
    parser.add_argument('--amp', action='store_true',
                        help='autocast: bfloat16 on CPU, float16 on CUDA (with a '
                        'GradScaler for --train)')
    parser.add_argument('--channels-last', action='store_true',
                        help='model and input in torch.channels_last (pytorch backend; not the '
                        'reference rows). EMO classification configs already set '
                        'model.backbone.channels_last=True')
    parser.add_argument('--deploy', action='store_true',
                        help='re-parameterize: model.backbone.switch_to_deploy() (a config '
                        'whose backbone lacks it is an error; peers without it run as they '
                        'are; the reference row is always the literal network)')
    parser.add_argument('--default-malloc', action='store_true',
                        help='keep glibc\'s default allocation (mmap / munmap for every '
                        'large tensor); by default the tool, like train.py and test.py, '
                        'calls emo.utils.keep_freed_memory() for the whole process (all '
                        'rows alike)')
    parser.add_argument('--out', help='JSON file of the results (default: '
                        'work_dirs/benchmark/benchmark_<time>.json)')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override settings of every CONFIG, key=value pairs')
    args = parser.parse_args(argv)

    if not args.configs and not args.peers:
        parser.error('give at least one CONFIG or --peers NAME')
    for key in ('batch_size', 'rounds', 'iters', 'latency_iters'):
        if getattr(args, key) < 1:
            parser.error(f'--{key.replace("_", "-")} must be >= 1')
    if args.warmup < 0 or (args.threads is not None and args.threads < 1):
        parser.error('--warmup must be >= 0 and --threads >= 1')
    args.backend = list(dict.fromkeys(b if b == 'pytorch' else get_backend(b).name
                                      for b in args.backend))
    for backend in set(args.backend) - {'pytorch'}:
        for opt in ('train', 'amp', 'channels_last'):
            if getattr(args, opt):
                parser.error(f'--{opt.replace("_", "-")} applies to --backend pytorch '
                             f'only ({backend} runs the exported float32 graph)')
        if args.device == 'cuda':
            parser.error(f'--backend {backend} runs on --device cpu only here')
    if args.train and args.deploy:
        parser.error('--deploy is an inference form (BatchNorms folded away); not with '
                     '--train')
    if args.device == 'cuda' and not torch.cuda.is_available():
        parser.error(f'--device cuda: torch {torch.__version__} sees no CUDA device '
                     f'(torch.cuda.is_available() is False; CUDA build: '
                     f'{torch.version.cuda}); use --device cpu')
    for path in args.configs:
        if not osp.isfile(path):
            parser.error(f'config file not found: {path}')
    if args.reference is not None:
        if not (args.reference.endswith('.py') and osp.isfile(args.reference)):
            parser.error(f'--reference: no Python file {args.reference}')
    return args


def load_reference(path):
    """The ``ReferenceEMO`` class of the Python file ``path``, imported as a module."""
    name = osp.splitext(osp.basename(path))[0]
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    if not hasattr(module, 'ReferenceEMO'):
        raise AttributeError(f'--reference {path}: the file defines no ReferenceEMO')
    return module.ReferenceEMO


class Features(nn.Module):
    """The reference network's feature maps (stem and stages 1-4): its backbone, without
    the classifier's final norm and head (neither computed nor counted)."""

    def __init__(self, net):
        super().__init__()
        del net.norm, net.head
        self.net = net

    def forward(self, x):
        return tuple(self.net.features(x))


class Entry:
    """One model to time: ``module`` maps a (B, 3, H, W) tensor to its outputs."""

    def __init__(self, name, kind, module, shape, source, task='classification',
                 part='model', deploy=None, variant=None, note=''):
        self.name, self.kind, self.module, self.shape = name, kind, module, tuple(shape)
        self.source, self.task, self.part = source, task, part
        self.deploy, self.variant, self.note = deploy, variant, note
        self.params = sum(p.numel() for p in module.parameters())
        self.flops = None  # multiply-adds at batch 1, counted before timing
        self.ref_key = None  # key of its reference entry in ``references``


def emo_variant(backbone, cfg_backbone, num_classes):
    """(reference kwargs, reason) of an EMO backbone: the released variant it is, or None
    and why not."""
    from emo.models import EMO
    if not isinstance(backbone, EMO):
        return None, f'backbone {type(backbone).__name__} is not EMO'
    arch = cfg_backbone.get('arch', '5m')
    if not isinstance(arch, str):
        return None, 'custom arch dict (no released variant)'
    windows = {backbone.window_size[i - 1] for i in backbone.attention_stages()}
    if len(windows) != 1:
        return None, f'window sizes {backbone.window_size} differ in the attention stages'
    return dict(variant=arch.lower(), window_size=windows.pop(), attn_pre=cfg_backbone.get(
        'attn_pre', True), num_classes=num_classes), ''


def build_config(path, args):
    """Entry of a config of this project; and the reference kwargs (or None)."""
    from emo.apis import build_model_from_cfg, reparameterize_model
    cfg = load_config(path, args.cfg_options)
    scope = cfg.default_scope
    model = build_model_from_cfg(cfg)  # no weight files needed
    name = osp.splitext(osp.basename(path))[0]
    if args.deploy and not reparameterize_model(model):
        raise ValueError(f'--deploy: the {type(model.backbone).__name__} backbone of '
                         f'{path} has no switch_to_deploy()')
    if args.shape:
        shape = args.shape
    elif cfg.get('test_pipeline') or cfg.get('test_dataloader'):
        shape = default_shape(cfg)
    else:
        shape = (224, 224)
    task = TASKS[scope]
    # an OpenMMLab model's forward(x) is its mode='tensor' forward
    if task == 'classification':
        module, part = model, 'model'
        num_classes = cfg.model.get('head', {}).get('num_classes', 1000)
    else:
        part = args.part
        module = model.backbone if part == 'backbone' else model
        name += f' [{part}]'
        num_classes = None
    ref, note = emo_variant(model.backbone, cfg.model.backbone, num_classes)
    entry = Entry(name, 'config', module, shape, path, task, part, deploy=args.deploy,
                  variant=ref and ref['variant'], note=note)
    return entry, ref


def peer_config(spec):
    """A peer given as ``pkg::dir/file.py`` -> the installed file's path."""
    if '::' not in spec:
        if not osp.isfile(spec):
            raise FileNotFoundError(f'peer config file not found: {spec}')
        return spec
    from mmengine.utils import get_installed_path
    package, rel = spec.split('::', 1)
    path = osp.join(get_installed_path(package), '.mim', 'configs', rel)
    if not osp.isfile(path):
        raise FileNotFoundError(f'peer config {spec}: no file {path}')
    return path


def build_peer(spec, args):
    import mmpretrain
    from mmengine.config import Config
    if spec.endswith('.py'):
        model = mmpretrain.get_model(Config.fromfile(peer_config(spec)), pretrained=False)
        name = osp.splitext(osp.basename(spec))[0]
    else:
        try:
            model = mmpretrain.get_model(spec, pretrained=False)
        except ValueError as e:  # unknown name: mmpretrain suggests close ones
            raise ValueError(f'--peers {spec}: {e}') from None
        name = spec
    deploy = False
    if args.deploy and hasattr(model.backbone, 'switch_to_deploy'):
        model.backbone.switch_to_deploy()
        deploy = True
    return Entry(name, 'peer', model, args.shape or (224, 224), spec,
                 deploy=deploy, note='' if deploy or not args.deploy else 'no deploy form')


def build_reference(path, ref, shape, dense):
    """The reference network of the file ``path`` for ``ref`` (variant, window, ...)."""
    net = load_reference(path)(ref['variant'], num_classes=ref['num_classes'] or 1000,
                               window_size=ref['window_size'], attn_pre=ref['attn_pre'])
    name = f'reference EMO-{ref["variant"].upper()}'
    if ref['window_size'] != 7:
        name += f' (window {ref["window_size"]})'
    if dense:
        net, name = Features(net), name + ' [backbone]'
    return Entry(name, 'reference', net, shape, path,
                 part='backbone' if dense else 'model', variant=ref['variant'])


def build_entries(args):
    """Every model to time, each config after its reference (with ``--reference``);
    peers last. Each entry's FLOPs are counted here, in eval mode."""
    entries, references = [], {}
    for path in args.configs:
        entry, ref = build_config(path, args)
        if ref is not None and args.reference:
            dense = entry.task != 'classification'
            key = (ref['variant'], ref['window_size'], ref['attn_pre'], ref['num_classes'],
                   dense, entry.shape)
            if key not in references:
                references[key] = build_reference(args.reference, ref, entry.shape, dense)
                entries.append(references[key])
            entry.ref_key = key
        entries.append(entry)
    for spec in args.peers:
        entries.append(build_peer(spec, args))
    if args.reference and not references:  # peers only: the released EMO-1M classifier
        ref = dict(variant='1m', window_size=7, attn_pre=True, num_classes=1000)
        key = ('1m', 7, True, 1000, False, tuple(args.shape or (224, 224)))
        references[key] = build_reference(args.reference, ref, key[-1], False)
        entries.insert(0, references[key])
    first = next(iter(references), None)  # None: compared with the first row
    for e in entries:
        if e.kind == 'reference':
            e.ref_key = next(k for k, r in references.items() if r is e)
        elif e.ref_key is None:
            e.ref_key = first
        e.flops = model_complexity(e.module.eval(), e.shape)['flops']
    return entries, references


def flat_tensors(out):
    if isinstance(out, torch.Tensor):
        return [out]
    if isinstance(out, dict):
        out = list(out.values())
    return [t for o in out for t in flat_tensors(o)]


def loss_of(out, labels):
    """Cross-entropy of (B, C) logits on random labels; else the mean of all outputs."""
    if isinstance(out, torch.Tensor) and out.dim() == 2:
        return F.cross_entropy(out.float(), labels % out.shape[1])
    return sum(t.float().mean() for t in flat_tensors(out))


class TorchRunner:
    """Inference passes or training steps of one module on fixed random inputs."""

    def __init__(self, entry, args, device):
        self.args, self.device = args, device
        self.out_dtype = None  # of the first output, seen on the first call
        # the reference row is always the literal network as released (NCHW)
        channels_last = args.channels_last and entry.kind != 'reference'
        fmt = torch.channels_last if channels_last else torch.contiguous_format
        self.module = entry.module.to(device)
        if channels_last:
            self.module = self.module.to(memory_format=torch.channels_last)
        self.module.train(args.train)
        g = torch.Generator().manual_seed(0)
        self.inputs = {}
        for b in (args.batch_size, 1):
            x = torch.randn(b, 3, *entry.shape, generator=g).to(device)
            self.inputs[b] = x.contiguous(memory_format=fmt)
        self.labels = torch.randint(0, 1 << 20, (args.batch_size, ), generator=g).to(device)
        amp_dtype = torch.bfloat16 if device.type == 'cpu' else torch.float16
        self.amp = dict(device_type=device.type, dtype=amp_dtype, enabled=args.amp)
        if args.train:
            params = [p for p in self.module.parameters() if p.requires_grad]
            self.optim = torch.optim.AdamW(params, lr=1e-4)
            self.scaler = torch.amp.GradScaler(
                device.type, enabled=args.amp and amp_dtype == torch.float16)

    def __call__(self, batch_size):
        x = self.inputs[batch_size]
        if not self.args.train:
            with torch.inference_mode(), torch.autocast(**self.amp):
                out = self.module(x)
            self.out_dtype = self.out_dtype or str(flat_tensors(out)[0].dtype)
            return out
        with torch.autocast(**self.amp):
            out = self.module(x)
            loss = loss_of(out, self.labels[:batch_size])
        self.out_dtype = self.out_dtype or str(flat_tensors(out)[0].dtype)
        self.optim.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        self.scaler.step(self.optim)
        self.scaler.update()


class ExportedRunner:
    """The module exported for a backend of the registry (``emo.deployment.registry``),
    one file per batch size (fixed where the backend fixes it; some peers, e.g. EdgeNeXt,
    fix the batch inside their XNNPACK partitions), each run through the backend's
    runtime model, its idle threads not spinning (they would slow the model timed
    next)."""

    def __init__(self, entry, args, folder, index, backend):
        import copy

        from emo.deployment.registry import ExportSpec
        backend = get_backend(backend)
        g = torch.Generator().manual_seed(0)
        self.models, self.inputs, self.out_dtype = {}, {}, None
        for b in (args.batch_size, 1):
            path = osp.join(folder, f'{index:02d}_{backend.name}_b{b}{backend.extension}')
            spec = ExportSpec(entry.shape, max_batch=b, dynamic_batch=False)
            backend.export(copy.deepcopy(entry.module).eval(), path, spec)
            self.models[b] = backend.load(path, threads=args.threads, spinning=False)
            self.inputs[b] = torch.randn(b, 3, *entry.shape, generator=g)

    def __call__(self, batch_size):
        out = self.models[batch_size](self.inputs[batch_size])
        self.out_dtype = self.out_dtype or f'numpy.{out[0].numpy().dtype}'
        return out


def timed(step, batch_size, iters, device):
    """Seconds for ``iters`` calls of ``step(batch_size)``."""
    if device.type == 'cuda':
        torch.cuda.synchronize(device)
    start = time.perf_counter()
    for _ in range(iters):
        step(batch_size)
    if device.type == 'cuda':
        torch.cuda.synchronize(device)
    return time.perf_counter() - start


def stats(values):
    return dict(min=min(values), median=statistics.median(values), max=max(values),
                rounds=values)


def options_text(args):
    opts = [o for o in ('train', 'amp', 'channels_last', 'deploy') if getattr(args, o)]
    return ', '.join(o.replace('_', '-') for o in opts) or 'eager inference'


def run(args):
    device = torch.device(args.device)
    args.keep_freed_memory = False if args.default_malloc else keep_freed_memory()
    if args.threads:
        torch.set_num_threads(args.threads)
    entries, references = build_entries(args)
    latency = not (args.no_latency or args.train)
    sizes = [args.batch_size] + ([1] if latency else [])
    runners = []  # (entry, backend, step)
    with tempfile.TemporaryDirectory(prefix='emo_benchmark_') as folder:
        for backend in args.backend:
            for i, e in enumerate(entries):
                try:
                    step = (TorchRunner(e, args, device) if backend == 'pytorch' else
                            ExportedRunner(e, args, folder, i, backend))
                    for b in sizes:  # warm-up; the first call also checks that it runs
                        for _ in range(max(args.warmup, 1)):
                            step(b)
                except Exception as err:
                    raise RuntimeError(
                        f'{e.name} ({e.source}) fails with backend {backend}, '
                        f'{options_text(args)}, input {list(e.shape)} on {args.device}: '
                        f'{type(err).__name__}: {err}') from err
                runners.append((e, backend, step))

        times = {id(step): {b: [] for b in sizes} for _, _, step in runners}
        for r in range(args.rounds):
            for e, backend, step in runners:
                times[id(step)][args.batch_size].append(
                    args.iters * args.batch_size / timed(step, args.batch_size, args.iters,
                                                         device))
                if latency:
                    times[id(step)][1].append(1000 * timed(step, 1, args.latency_iters,
                                                           device) / args.latency_iters)
            print(f'round {r + 1}/{args.rounds} done', file=sys.stderr, flush=True)

    rows, by_ref = [], {}
    for e, backend, step in runners:
        t = times[id(step)]
        row = dict(name=e.name, kind=e.kind, source=e.source, task=e.task, part=e.part,
                   backend=backend, shape=list(e.shape), params=e.params, flops=e.flops,
                   deploy=e.deploy,
                   variant=e.variant, note=e.note, output_dtype=step.out_dtype,
                   throughput=stats(t[args.batch_size]),
                   latency_ms=stats(t[1]) if latency else None)
        rows.append(row)
        if e.kind == 'reference' or e.ref_key is None:  # no --reference: the first row
            by_ref.setdefault((e.ref_key, backend), row)
    for (e, backend, _), row in zip(runners, rows):
        ref = by_ref[(e.ref_key, backend)]
        row['reference'] = ref['name']
        row['x_reference'] = dict(
            throughput=row['throughput']['median'] / ref['throughput']['median'],
            latency=(ref['latency_ms']['median'] / row['latency_ms']['median']
                     if latency else None))
    return rows


def machine_info(args):
    cpu = platform.processor()
    try:
        with open('/proc/cpuinfo') as f:
            cpu = next(line.split(':', 1)[1].strip() for line in f
                       if line.startswith('model name'))
    except (OSError, StopIteration):
        pass
    info = dict(cpu=cpu, logical_cpus=os.cpu_count(),
                usable_cpus=len(os.sched_getaffinity(0)) if hasattr(os, 'sched_getaffinity')
                else None,
                load_average_after=list(os.getloadavg()) if hasattr(os, 'getloadavg')
                else None,
                platform=platform.platform(), python=platform.python_version(),
                torch=torch.__version__, torch_threads=torch.get_num_threads(),
                torch_interop_threads=torch.get_num_interop_threads(),
                omp_num_threads=os.environ.get('OMP_NUM_THREADS'),
                keep_freed_memory=args.keep_freed_memory)
    for name in args.backend:
        if name != 'pytorch':
            info[name] = get_backend(name).version()
            info[f'{name}_threads'] = args.threads or 'default'
    if args.device == 'cuda':
        info['gpu'] = torch.cuda.get_device_name()
        info['cuda'] = torch.version.cuda
    try:
        info['git_commit'] = subprocess.run(
            ['git', 'rev-parse', 'HEAD'], cwd=REPO, capture_output=True, text=True,
            timeout=10).stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        info['git_commit'] = None
    return info


def fmt_triple(s, digits):
    return ' / '.join(f'{s[k]:.{digits}f}' for k in ('min', 'median', 'max'))


def markdown(rows, args, info):
    multi = len(args.backend) > 1
    shapes = sorted({tuple(r['shape']) for r in rows})
    what = 'training steps' if args.train else 'inference'
    lines = [
        f'{what} ({options_text(args)}), batch {args.batch_size}, input '
        f'{", ".join(f"{h}x{w}" for h, w in shapes)}, {args.device}, '
        f'{info["torch_threads"]} torch thread(s), backend {" + ".join(args.backend)}, '
        f'malloc {"keeps freed memory" if args.keep_freed_memory else "default"}; '
        f'min / median / max over {args.rounds} rounds; GFLOPs at batch 1. ' + (
            '"x ref" = median speed relative to the row\'s reference (same variant, window '
            'and size; peers and non-EMO configs: '
            f'{rows[0]["reference"] if rows else "-"}); > 1 is faster.' if args.reference
            else '"x ref" = median speed relative to the first row of the same backend '
            f'({rows[0]["reference"] if rows else "-"}; no --reference); > 1 is faster.'),
        '',
        '| model | ' + ('backend | ' if multi else '') + 'params | GFLOPs | img/s | x ref | '
        'batch-1 latency (ms) | x ref |',
        '|---|' + ('---|' if multi else '') + '---:|---:|---|---:|---|---:|']
    for r in rows:
        name = r['name'] + (f' ({r["note"]})' if r['note'] else '')
        lat = r['latency_ms']
        cells = [name] + ([r['backend']] if multi else []) + [
            f'{r["params"] / 1e6:.2f} M', f'{r["flops"] / 1e9:.3f}',
            fmt_triple(r['throughput'], 1), f'{r["x_reference"]["throughput"]:.2f}',
            fmt_triple(lat, 2) if lat else '-',
            f'{r["x_reference"]["latency"]:.2f}' if lat else '-']
        lines.append('| ' + ' | '.join(cells) + ' |')
    return '\n'.join(lines)


def main(argv=None):
    args = get_args(argv)
    load_before = list(os.getloadavg()) if hasattr(os, 'getloadavg') else None
    rows = run(args)
    info = machine_info(args)
    info['load_average_before'] = load_before  # 1 / 5 / 15 min; a busy machine shows here
    table = markdown(rows, args, info)
    print(table)
    out = args.out or osp.join(
        'work_dirs', 'benchmark',
        f'benchmark_{datetime.datetime.now().strftime("%Y%m%d_%H%M%S")}.json')
    os.makedirs(osp.dirname(osp.abspath(out)), exist_ok=True)
    args.out = out
    result = dict(args=vars(args), machine=info,
                  time=datetime.datetime.now(datetime.timezone.utc).isoformat(),
                  rows=rows, table=table)
    with open(out, 'w') as f:
        json.dump(result, f, indent=2)
    print(f'\nresults: {out}')
    return result


if __name__ == '__main__':
    main()
