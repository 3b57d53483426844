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
    python tools/analysis/benchmark.py configs/classification/emo-1m_8xb256_in1k.py \\
        --peers edgenext-xxsmall_3rdparty_in1k --published --backend pytorch compile \\
        openvino --int8 --deploy --channels-last --threads 2   # every form, like with like
    python tools/analysis/benchmark.py configs/classification/emo-1m_8xb256_in1k.py \\
        --peers mobilevit-xxsmall_3rdparty_in1k --deploy --channels-last \\
        --sizes 224 512 1024 800x1333 --batches 1 8 32 64 --plot scaling.png
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
    parser.add_argument('--backend', nargs='+',
                        choices=['pytorch', 'compile'] + backend_names(True),
                        default=['pytorch'],
                        help='one or more (default: pytorch); compile: the pytorch rows '
                        'compiled in this process by torch.compile (Inductor, freezing, one '
                        'static graph per batch size; with --train the forward and '
                        'backward); the others (the registry of emo.deployment.registry: '
                        'onnxruntime, executorch, openvino, inductor (AOTInductor .pt2), '
                        '...) export every model to a temporary folder, one file per batch '
                        'size, and time it there through the backend\'s runtime model. '
                        'Compile / export seconds are reported apart from the timings')
    parser.add_argument('--int8', action='store_true',
                        help='also time the INT8 form of every model in each backend that '
                        'quantizes (the files tools/deployment/quantize.py writes, '
                        'calibrated here on --calib-num random inputs: speed does not '
                        'depend on the calibration data), beside its float32 form')
    parser.add_argument('--calib-num', type=int, default=8,
                        help='calibration inputs of --int8 (default: 8)')
    parser.add_argument('--published', action='store_true',
                        help='also time every peer at its published input size (the test '
                        'crop of its mmpretrain config, e.g. 256 for EdgeNeXt-XXS and '
                        'MobileViT-XXS) where it differs from --shape / 224')
    parser.add_argument('--sizes', nargs='+', metavar='N_OR_HxW',
                        help='cost as the input grows: time and peak memory of every model '
                        'at batch 1 at each size (e.g. 224 384 512 768 1024 800x1333), '
                        'with the time per pixel; replaces the usual table (torch forms '
                        'only: pytorch or compile)')
    parser.add_argument('--batches', type=int, nargs='+', metavar='B',
                        help='cost as the batch grows: time and peak memory of every model '
                        'at each batch size (e.g. 1 8 32 64) at --shape / 224')
    parser.add_argument('--plot', metavar='FILE.png',
                        help='with --sizes / --batches: a plot of the scaling table')
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
                        help='model and input in torch.channels_last (pytorch and compile '
                        'rows; exported ones export NCHW; not the '
                        'reference rows). EMO classification configs already set '
                        'model.backbone.channels_last=True')
    parser.add_argument('--deploy', action='store_true',
                        help='re-parameterize: every module with switch_to_deploy() switches '
                        '(emo.apis.reparameterize_model; a config whose model has none is '
                        'an error; peers without one run as they '
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
    args.backend = list(dict.fromkeys(b if b in ('pytorch', 'compile') else get_backend(b).name
                                      for b in args.backend))
    if args.int8 and not any(b not in ('pytorch', 'compile') and get_backend(b).quantizer
                             for b in args.backend):
        parser.error('--int8: none of the backends quantizes (those that do: ' + ', '.join(
            n for n in backend_names() if get_backend(n).quantizer) + ')')
    for backend in set(args.backend) - {'pytorch', 'compile'}:
        for opt in ('train', 'amp'):  # --channels-last: the torch rows only
            if getattr(args, opt):
                parser.error(f'--{opt.replace("_", "-")} applies to --backend pytorch '
                             f'only ({backend} runs the exported float32 graph)')
        if args.device == 'cuda':
            parser.error(f'--backend {backend} runs on --device cpu only here')
    if args.train and args.deploy:
        parser.error('--deploy is an inference form (BatchNorms folded away); not with '
                     '--train')
    if args.sizes:
        try:
            args.sizes = [parse_size(v) for v in args.sizes]
        except ValueError:
            parser.error(f'--sizes takes N or HxW (e.g. 224 800x1333), got {args.sizes}')
    if args.sizes or args.batches:
        if args.train or args.int8 or set(args.backend) - {'pytorch', 'compile'}:
            parser.error('--sizes / --batches time the torch forms (--backend pytorch '
                         'and / or compile), inference only')
        if args.batches and min(args.batches) < 1:
            parser.error('--batches must be >= 1')
    elif args.plot:
        parser.error('--plot draws the table of --sizes / --batches')
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


def parse_size(text):
    """'224' -> (224, 224); '800x1333' -> (800, 1333)."""
    h, _, w = str(text).lower().partition('x')
    h, w = int(h), int(w or h)
    if h < 1 or w < 1:
        raise ValueError(text)
    return h, w


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


def published_shape(spec):
    """The test crop (H, W) of a peer's mmpretrain config (its published input size), or
    None when it cannot be told."""
    from mmengine.config import Config
    try:
        if spec.endswith('.py'):
            cfg = Config.fromfile(peer_config(spec))
        else:
            from mmpretrain.apis import ModelHub
            cfg = ModelHub.get(spec).config
        return tuple(default_shape(cfg))
    except Exception:  # noqa: BLE001  (no config, no test pipeline: only --shape)
        return None


def build_peer(spec, args, shape=None):
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
    if args.deploy:
        from emo.apis import reparameterize_model
        deploy = reparameterize_model(model) > 0
    return Entry(name, 'peer', model, shape or args.shape or (224, 224), spec,
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
        published = published_shape(spec) if args.published else None
        if published and tuple(published) != tuple(entries[-1].shape):
            entries.append(build_peer(spec, args, published))
            entries[-1].note = ', '.join(filter(None, ['published size', entries[-1].note]))
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
        counted = model_complexity(e.module.eval(), e.shape, warn=False)
        e.flops, e.uncounted = counted['flops'], counted['unsupported']
    uncounted = {}
    for e in entries:
        for op, calls in e.uncounted.items():
            uncounted[op.replace('aten::', '')] = uncounted.get(op.replace('aten::', ''), 0) + 1
    if uncounted:  # one line instead of mmengine's warnings per op and model
        print('FLOP counter: ops counted as zero (elementwise, norms, softmax; models with '
              'them): ' + ', '.join(f'{op} ({n})' for op, n in sorted(uncounted.items())),
              file=sys.stderr)
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
    """Inference passes or training steps of one module on fixed random inputs; with
    ``compile``, the module compiled by Inductor in this process (inference:
    ``emo.deployment.inductor.compile_for_inference``, freezing; training: the module's
    forward, its backward compiled with it), one static graph per batch size: the first
    call at each size compiles, and its seconds are kept in ``compile_s``."""

    def __init__(self, entry, args, device, compile=False):
        self.args, self.device = args, device
        self.compile, self.compile_s = compile, {}
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
        self.eager = self.module
        if compile:
            from emo.deployment.inductor import compile_for_inference
            self.module = (torch.compile(self.module, dynamic=False) if args.train else
                           compile_for_inference(self.module))

    def __call__(self, batch_size):
        if self.compile and batch_size not in self.compile_s:
            start = time.perf_counter()
            self.step(batch_size)
            self.compile_s[batch_size] = time.perf_counter() - start
        return self.step(batch_size)

    def step(self, batch_size):
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

    def __init__(self, entry, args, folder, index, backend, int8=False):
        import copy

        from emo.deployment.registry import ExportSpec
        backend = get_backend(backend)
        g = torch.Generator().manual_seed(0)
        self.models, self.inputs, self.out_dtype, self.compile_s = {}, {}, None, {}
        self.float_ops = None
        os.makedirs(folder, exist_ok=True)
        for b in (args.batch_size, 1):
            # batches of b (a file may fix its batch), --calib-num images at least
            calib = [torch.randn(b, 3, *entry.shape, generator=g)
                     for _ in range(-(-args.calib_num // b))]
            stem = osp.join(folder, f'{index:02d}_{backend.name}_b{b}')
            spec = ExportSpec(entry.shape, max_batch=b, dynamic_batch=False)
            start = time.perf_counter()
            if int8:  # the float32 and INT8 files quantize.py writes; the INT8 one is timed
                _, path, self.float_ops = backend.quantize(
                    copy.deepcopy(entry.module).eval(), stem, calib, spec, {})
            else:
                path = backend.export(copy.deepcopy(entry.module).eval(),
                                      stem + backend.extension, spec)
            self.compile_s[b] = time.perf_counter() - start
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
    forms = [(b, False) for b in args.backend]
    if args.int8:
        forms += [(b, True) for b in args.backend
                  if b not in ('pytorch', 'compile') and get_backend(b).quantizer]
    args.backend_forms = [b + (' int8' if int8 else '') for b, int8 in forms]
    with tempfile.TemporaryDirectory(prefix='emo_benchmark_') as folder:
        for form, int8 in forms:
            backend = form + (' int8' if int8 else '')
            for i, e in enumerate(entries):
                if int8 and e.kind == 'reference':
                    continue  # the literal network: no task model for the quantizers
                try:
                    step = (TorchRunner(e, args, device, form == 'compile')
                            if form in ('pytorch', 'compile') else
                            ExportedRunner(e, args, osp.join(folder, backend.replace(' ', '_')),
                                           i, form, int8))
                    # warm-up; the first call also checks that it runs. The compiled form
                    # goes through the sizes twice: its first timed pass at each size after
                    # both had compiled was seconds slow (once, for every model)
                    for _ in range(2 if form == 'compile' else 1):
                        for b in sizes:
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
                   latency_ms=stats(t[1]) if latency else None,
                   compile_s={str(b): s for b, s in getattr(step, 'compile_s', {}).items()},
                   float_ops=getattr(step, 'float_ops', None))
        rows.append(row)
        if e.kind == 'reference' or e.ref_key is None:  # no --reference: the first row
            by_ref.setdefault((e.ref_key, backend), row)
    def ratio(row, ref):
        return dict(throughput=row['throughput']['median'] / ref['throughput']['median'],
                    latency=(ref['latency_ms']['median'] / row['latency_ms']['median']
                             if latency else None))

    same = {(id(e), backend): row for (e, backend, _), row in zip(runners, rows)}
    for (e, backend, _), row in zip(runners, rows):
        ref = by_ref.get((e.ref_key, backend)) or by_ref[(e.ref_key, backend.split()[0])]
        row['reference'] = ref['name']
        row['x_reference'] = ratio(row, ref)
        if backend.endswith(' int8'):  # INT8 against the same model's float32 form
            row['x_fp32'] = ratio(row, same[(id(e), backend.split()[0])])
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
        if name not in ('pytorch', 'compile'):
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
        '| model | ' + ('backend | ' if multi else '') + 'input | params | GFLOPs | img/s | '
        'x ref | batch-1 latency (ms) | x ref | compile / export s |',
        '|---|' + ('---|' if multi else '') + '---|---:|---:|---|---:|---|---:|---:|']
    for r in rows:
        name = r['name'] + (f' ({r["note"]})' if r['note'] else '')
        lat = r['latency_ms']
        x = r.get('x_fp32') or r['x_reference']  # INT8 rows: x its float32 form
        compiled = ' / '.join(f'{r["compile_s"][b]:.0f}' for b in sorted(
            r['compile_s'], key=int, reverse=True)) if r.get('compile_s') else '-'
        cells = [name] + ([r['backend']] if multi else []) + [
            '{}x{}'.format(*r['shape']), f'{r["params"] / 1e6:.2f} M',
            f'{r["flops"] / 1e9:.3f}', fmt_triple(r['throughput'], 1),
            f'{x["throughput"]:.2f}' + (' fp32' if 'x_fp32' in r else ''),
            fmt_triple(lat, 2) if lat else '-',
            (f'{x["latency"]:.2f}' + (' fp32' if 'x_fp32' in r else '')) if lat else '-',
            compiled]
        lines.append('| ' + ' | '.join(cells) + ' |')
    lines += summary(rows, args)
    return '\n'.join(lines)


def fastest(rows, key):
    """The row of ``rows`` with the best median of ``key`` (throughput: highest;
    latency_ms: lowest)."""
    have = [r for r in rows if r.get(key)]
    if not have:
        return None
    pick = max if key == 'throughput' else min
    return pick(have, key=lambda r: r[key]['median'])


def summary(rows, args):
    """Markdown lines after the table: each model's fastest form (over the backends), and
    the first config's ratios to every peer, per backend and fastest against fastest,
    flagged where the FLOPs are equal (within 5 %: like with like)."""
    models = {}
    for r in rows:
        models.setdefault((r['name'], tuple(r['shape'])), []).append(r)
    if len(rows) < 2:
        return []
    lines = ['', 'Fastest form of each model (over the backends timed):', '',
             '| model | input | GFLOPs | best img/s (form) | best batch-1 ms (form) |',
             '|---|---|---:|---|---|']
    best = {}
    for (name, shape), rs in models.items():
        t, l = fastest(rs, 'throughput'), fastest(rs, 'latency_ms')
        best[(name, shape)] = (t, l)
        lines.append(f'| {name} | {shape[0]}x{shape[1]} | {rs[0]["flops"] / 1e9:.3f} | '
                     f'{t["throughput"]["median"]:.1f} ({t["backend"]}) | ' +
                     (f'{l["latency_ms"]["median"]:.2f} ({l["backend"]})' if l else '-') + ' |')
    first = next((r for r in rows if r['kind'] == 'config'), None)
    peers = [k for k, rs in models.items() if rs[0]['kind'] == 'peer']
    if first is None or not peers:
        return lines
    key = (first['name'], tuple(first['shape']))
    lines += ['', f'{first["name"]} ({first["shape"][0]}x{first["shape"][1]}) / peer, '
              'throughput / batch-1 latency (> 1: EMO faster); "=" marks equal FLOPs '
              '(within 5 %):', '',
              '| peer | input | ' + ' | '.join(args.backend_forms) + ' | fastest / fastest |',
              '|---|---|' + '---|' * (len(args.backend_forms) + 1)]
    mine = {r['backend']: r for r in models[key]}
    for peer in peers:
        theirs = {r['backend']: r for r in models[peer]}
        equal = abs(theirs[next(iter(theirs))]['flops'] / first['flops'] - 1) <= 0.05
        cells = []
        for b in args.backend_forms:
            a, p = mine.get(b), theirs.get(b)
            cells.append(ratio_text(a, p) if a and p else '-')
        (ta, la), (tp, lp) = best[key], best[peer]
        cells.append(ratio_text(dict(throughput=ta['throughput'], latency_ms=la and
                                     la['latency_ms']),
                                dict(throughput=tp['throughput'], latency_ms=lp and
                                     lp['latency_ms'])))
        lines.append(f'| {peer[0]}{" =" if equal else ""} | {peer[1][0]}x{peer[1][1]} | ' +
                     ' | '.join(cells) + ' |')
    return lines


def ratio_text(a, p):
    t = a['throughput']['median'] / p['throughput']['median']
    if a.get('latency_ms') and p.get('latency_ms'):
        return f'{t:.2f} / {p["latency_ms"]["median"] / a["latency_ms"]["median"]:.2f}'
    return f'{t:.2f}'


# ------------------------------------------------------------ cost as work grows


def _status_kib(key):
    with open('/proc/self/status') as f:
        for line in f:
            if line.startswith(key + ':'):
                return int(line.split()[1])
    raise OSError(f'/proc/self/status has no {key}')


def peak_memory_mib(fn):
    """Peak resident memory one call of ``fn`` adds, in MiB: glibc's free memory is
    handed back first (``malloc_trim``, so memory kept from earlier passes does not hide
    this one's), the peak reset (``/proc/self/clear_refs``), then ``VmHWM`` after the
    call minus ``VmRSS`` before it. None where Linux's /proc or glibc cannot tell."""
    import ctypes
    import gc
    gc.collect()
    try:
        ctypes.CDLL(None).malloc_trim(0)
        with open('/proc/self/clear_refs', 'w') as f:
            f.write('5')  # VmHWM := VmRSS
        before = _status_kib('VmRSS')
    except (OSError, AttributeError):
        fn()
        return None
    fn()
    return (_status_kib('VmHWM') - before) / 1024


def run_scaling(args):
    """``--sizes`` / ``--batches``: every model in each torch form at each point (batch 1
    at each size; each batch at --shape), interleaved point by point; per point a
    warm-up pass (the compile of a new shape for ``compile``), a pass whose peak memory
    is measured, then ``--rounds`` rounds of up to ``--iters`` passes (about a second at
    most, at least one) per model."""
    device = torch.device(args.device)
    args.keep_freed_memory = False if args.default_malloc else keep_freed_memory()
    if args.threads:
        torch.set_num_threads(args.threads)
    args.published, args.backend_forms = False, list(args.backend)
    base = tuple(args.shape or (224, 224))
    points = ([(1, tuple(hw)) for hw in args.sizes or []] +
              [(b, base) for b in args.batches or []])
    points = list(dict.fromkeys(points))
    entries, _ = build_entries(args)
    if 'compile' in args.backend:  # one static graph per shape and model: raise the limit
        limit = 2 * len(points) * len(entries) + 8
        for key in ('recompile_limit', 'cache_size_limit', 'accumulated_recompile_limit'):
            if hasattr(torch._dynamo.config, key):
                setattr(torch._dynamo.config, key, max(getattr(torch._dynamo.config, key),
                                                      limit))
    modules = []  # (entry, form, module)
    for e in entries:
        channels_last = args.channels_last and e.kind != 'reference'
        e.module.to(device).eval()
        if channels_last:
            e.module.to(memory_format=torch.channels_last)
        for form in args.backend:
            if form == 'compile':
                from emo.deployment.inductor import compile_for_inference
                modules.append((e, form, compile_for_inference(e.module), channels_last))
            else:
                modules.append((e, form, e.module, channels_last))
    g = torch.Generator().manual_seed(0)
    rows, flops_at = [], {}
    for batch, hw in points:
        x = torch.randn(batch, 3, *hw, generator=g).to(device)
        todo = []
        for e, form, module, channels_last in modules:
            inp = x.contiguous(memory_format=torch.channels_last if channels_last else
                               torch.contiguous_format)

            def call(module=module, inp=inp):
                with torch.inference_mode(), torch.autocast(device.type, enabled=args.amp,
                                                            dtype=torch.bfloat16):
                    out = module(inp)
                if device.type == 'cuda':
                    torch.cuda.synchronize(device)
                return out

            try:
                start = time.perf_counter()
                call()  # warm-up; compiles this shape for the compiled form
                compile_s = time.perf_counter() - start if form == 'compile' else None
                memory = peak_memory_mib(call)
            except Exception as err:
                raise RuntimeError(f'{e.name} ({e.source}) fails with backend {form} at '
                                   f'batch {batch}, input {hw[0]}x{hw[1]}: '
                                   f'{type(err).__name__}: {err}') from err
            if (id(e), hw) not in flops_at:  # the same network in every form
                flops_at[(id(e), hw)] = model_complexity(e.module, hw, warn=False)['flops']
            flops = flops_at[(id(e), hw)]
            row = dict(name=e.name, kind=e.kind, source=e.source, backend=form,
                       shape=list(hw), batch=batch, params=e.params, flops=flops,
                       peak_memory_mib=memory, compile_s=compile_s, ms=[])
            rows.append(row)
            todo.append((row, call))
        for _ in range(args.rounds):
            for row, call in todo:
                n, start = 0, time.perf_counter()
                while n < 1 or (n < args.iters and time.perf_counter() - start < 1.0):
                    call()
                    n += 1
                row['ms'].append(1000 * (time.perf_counter() - start) / n)
        print(f'batch {batch}, {hw[0]}x{hw[1]} done', file=sys.stderr, flush=True)
    for row in rows:
        row['ms_per_pass'] = stats(row.pop('ms'))
        ms = row['ms_per_pass']['median']
        row['img_per_s'] = 1000 * row['batch'] / ms
        row['ns_per_pixel'] = 1e6 * ms / (row['batch'] * row['shape'][0] * row['shape'][1])
    return rows


def scaling_markdown(rows, args, info):
    """The tables of ``--sizes`` (batch 1 against the input size, with the time per pixel
    relative to the model's at the first size) and ``--batches``."""
    lines = [f'inference ({options_text(args)}), {args.device}, {info["torch_threads"]} '
             f'torch thread(s), form {" + ".join(args.backend)}, malloc '
             f'{"keeps freed memory" if args.keep_freed_memory else "default"}; ms per pass: '
             f'median (min - max) over {args.rounds} rounds; GFLOPs per image; peak MiB: '
             'resident memory a pass adds (VmHWM).']
    key = lambda r: (r['name'], r['backend'])  # noqa: E731
    sizes = [tuple(s) for s in args.sizes or []]
    if sizes:
        lines += ['', 'Batch 1 against the input size ("x 1st" = ns per pixel relative to '
                  f'{sizes[0][0]}x{sizes[0][1]}; 1.00 = linear in the pixels):', '',
                  '| model | form | input | Mpixel | GFLOPs | ms | ns / pixel | x 1st | '
                  'peak MiB |', '|---|---|---|---:|---:|---|---:|---:|---:|']
        first = {}
        for r in rows:
            if r['batch'] != 1 or tuple(r['shape']) not in sizes:
                continue
            first.setdefault(key(r), r['ns_per_pixel'])
            t = r['ms_per_pass']
            mem = r['peak_memory_mib']
            lines.append(
                f'| {r["name"]} | {r["backend"]} | {r["shape"][0]}x{r["shape"][1]} | '
                f'{r["shape"][0] * r["shape"][1] / 1e6:.3f} | {r["flops"] / 1e9:.3f} | '
                f'{t["median"]:.1f} ({t["min"]:.1f} - {t["max"]:.1f}) | '
                f'{r["ns_per_pixel"]:.1f} | {r["ns_per_pixel"] / first[key(r)]:.2f} | '
                + (f'{mem:.0f}' if mem is not None else '-') + ' |')
    if args.batches:
        hw = tuple(args.shape or (224, 224))
        lines += ['', f'Against the batch at {hw[0]}x{hw[1]}:', '',
                  '| model | form | batch | ms / pass | img/s | ms / image | peak MiB |',
                  '|---|---|---:|---|---:|---:|---:|']
        for r in rows:
            if tuple(r['shape']) != hw or r['batch'] not in args.batches:
                continue
            t, mem = r['ms_per_pass'], r['peak_memory_mib']
            lines.append(
                f'| {r["name"]} | {r["backend"]} | {r["batch"]} | {t["median"]:.1f} '
                f'({t["min"]:.1f} - {t["max"]:.1f}) | {r["img_per_s"]:.1f} | '
                f'{t["median"] / r["batch"]:.2f} | ' +
                (f'{mem:.0f}' if mem is not None else '-') + ' |')
    return '\n'.join(lines)


def scaling_plot(rows, args, path):
    """``--plot``: batch-1 time and time per pixel against the pixels (``--sizes``), and
    img/s and peak memory against the batch (``--batches``)."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    sizes = [tuple(s) for s in args.sizes or []]
    panels = (['ms', 'ns'] if sizes else []) + (['batch'] if args.batches else [])
    fig, axes = plt.subplots(1, len(panels), figsize=(5.2 * len(panels), 4.2), squeeze=False)
    series = list(dict.fromkeys((r['name'], r['backend']) for r in rows))
    hw = tuple(args.shape or (224, 224))
    for ax, panel in zip(axes[0], panels):
        for name, form in series:
            label = name if len(args.backend) == 1 else f'{name} ({form})'
            mine = [r for r in rows if (r['name'], r['backend']) == (name, form)]
            if panel in ('ms', 'ns'):
                pts = sorted((r['shape'][0] * r['shape'][1] / 1e6, r) for r in mine
                             if r['batch'] == 1 and tuple(r['shape']) in sizes)
                xs = [p for p, _ in pts]
                ys = [r['ms_per_pass']['median'] if panel == 'ms' else r['ns_per_pixel']
                      for _, r in pts]
            else:
                pts = sorted((r['batch'], r) for r in mine if tuple(r['shape']) == hw and
                             r['batch'] in args.batches)
                xs, ys = [p for p, _ in pts], [r['img_per_s'] for _, r in pts]
            ax.plot(xs, ys, marker='o', label=label)
        if panel == 'ms':
            ax.set(xscale='log', yscale='log', xlabel='input (megapixels), batch 1',
                   ylabel='ms per image', title='time against pixels')
        elif panel == 'ns':
            ax.set(xscale='log', xlabel='input (megapixels), batch 1',
                   ylabel='ns per pixel', title='time per pixel (flat = linear)')
            ax.set_ylim(bottom=0)
        else:
            ax.set(xscale='log', xlabel=f'batch ({hw[0]}x{hw[1]})', ylabel='img/s',
                   title='throughput against batch')
            ax.set_xticks(args.batches, [str(b) for b in args.batches])
        ax.grid(True, which='both', alpha=0.3)
    axes[0][0].legend(fontsize=8)
    fig.tight_layout()
    os.makedirs(osp.dirname(osp.abspath(path)), exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def main(argv=None):
    args = get_args(argv)
    load_before = list(os.getloadavg()) if hasattr(os, 'getloadavg') else None
    scaling = bool(args.sizes or args.batches)
    rows = run_scaling(args) if scaling else run(args)
    info = machine_info(args)
    info['load_average_before'] = load_before  # 1 / 5 / 15 min; a busy machine shows here
    out = args.out or osp.join(
        'work_dirs', 'benchmark',
        f'benchmark_{datetime.datetime.now().strftime("%Y%m%d_%H%M%S")}.json')
    os.makedirs(osp.dirname(osp.abspath(out)), exist_ok=True)
    args.out = out
    result = dict(args=vars(args), machine=info,
                  time=datetime.datetime.now(datetime.timezone.utc).isoformat(),
                  rows=rows, table=None)
    with open(out, 'w') as f:  # the figures first: a long run keeps them whatever follows
        json.dump(result, f, indent=2)
    result['table'] = table = (scaling_markdown if scaling else markdown)(rows, args, info)
    print(table)
    if args.plot:
        result['plot'] = scaling_plot(rows, args, args.plot)
        print(f'\nplot: {args.plot}')
    with open(out, 'w') as f:
        json.dump(result, f, indent=2)
    print(f'\nresults: {out}')
    return result


if __name__ == '__main__':
    main()
