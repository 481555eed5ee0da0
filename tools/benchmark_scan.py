"""Time the selective scan's forward and backward on a CUDA GPU.

Runs the Triton kernel, the PyTorch path (backend='torch') and, when ``mamba_ssm`` imports,
its ``selective_scan_fn``, on the issue's three backbone shapes or on one of your own, and
prints a table: median microseconds over many runs (CUDA events, after warm-up), achieved
bandwidth counting every tensor read or written once, that bandwidth as a fraction of a measured
device-to-device copy, and the largest difference of each output from the Triton one. For the
Triton kernel, 'kernels us' is the GPU time of its kernels alone (fwd/bwd, torch.profiler): the
event times also hold the Python and launch time when that is the longer part.

    python tools/benchmark_scan.py                       # the three issue shapes
    python tools/benchmark_scan.py --batch 8 --dim 192 --seqlen 4096 --d-state 1 \\
        --path cross2d --hw 64 64 --groups 4 --shared-u --out-fp32 --no-z

With ``--codegen`` (no GPU needed) it compiles every kernel for an H100 (sm_90) at those shapes
instead and prints what each compiles to (``mmssm_kernels.codegen``): registers, spill bytes,
shared memory, programs and programs resident per SM, and inside the kernel's loops per
element-step the shuffles, special-function instructions and vector/all global loads, the lanes
a scan spans along time (1: inside a thread) and reverse scans; and kernel launches per call
(Triton + torch). ``--check`` exits with an error on any spill or register budget exceeded.
"""
import argparse
import os
import re
import sys
from dataclasses import dataclass
from typing import Optional, Tuple

import torch

from mmssm_kernels import ScanPaths, selective_scan

DTYPES = {'bf16': torch.bfloat16, 'fp16': torch.float16, 'fp32': torch.float32}


@dataclass
class Shape:
    name: str
    batch: int
    dim: int
    seqlen: int
    d_state: int
    path: str = 'forward'
    hw: Optional[Tuple[int, int]] = None
    groups: int = 0  # 0: B/C (batch, N, L); else (batch, G, N, L)
    z: bool = True
    shared_u: bool = False
    out_fp32: bool = False
    dtype: str = 'bf16'
    # token rows padded to a multiple of 16 elements, as a model allocates them so that every
    # row starts 16-byte aligned (Vim's 1025 tokens otherwise allow no vector loads)
    aligned_rows: bool = False
    # (fwd, bwd) microseconds: the issue's H100 targets and mamba_ssm's CUDA kernel there
    target: Optional[Tuple[float, float]] = None
    mamba_issue: Optional[Tuple[float, float]] = None

    def paths(self):
        if self.path == 'cross2d':
            return ScanPaths.cross2d(self.hw)
        return {'forward': ScanPaths.forward(), 'reverse': ScanPaths.reverse(),
                'bidirectional': ScanPaths.bidirectional()}[self.path]


ISSUE_SHAPES = [
    Shape('Vim-S 512 (1 dir)', 8, 768, 1025, 16, aligned_rows=True, target=(60, 150),
          mamba_issue=(379, 1337)),
    Shape('VMamba-T stage1 512', 8, 96, 16384, 1, path='cross2d', hw=(128, 128), groups=4,
          z=False, shared_u=True, out_fp32=True, target=(125, 250), mamba_issue=(225, 611)),
    Shape('MambaVision-T stage3', 8, 160, 1024, 8, z=False, target=(10, 25),
          mamba_issue=(35, 137)),
]


def token_rows(s: Shape, *shape, **kw):
    """An empty tensor of ``shape`` (tokens last), in rows padded to 16 elements with
    ``aligned_rows``."""
    if not s.aligned_rows:
        return torch.empty(*shape, **kw)
    return torch.empty(*shape[:-1], -(-shape[-1] // 16) * 16, **kw)[..., :shape[-1]]


def make_inputs(s: Shape, device='cuda'):
    g = torch.Generator(device=device).manual_seed(0)
    dt = DTYPES[s.dtype]
    K = s.paths().num_routes
    total = K * s.dim
    u_ch = s.dim if s.shared_u else total

    def rnd(*shape, scale=1.0):
        x = token_rows(s, *shape, dtype=dt, device=device)
        x.copy_(scale * torch.randn(*shape, generator=g, device=device))
        return x.requires_grad_()

    bc = (s.batch, s.d_state, s.seqlen) if not s.groups else (s.batch, s.groups, s.d_state,
                                                              s.seqlen)
    param = dict(device=device, dtype=torch.float32)
    return dict(
        u=rnd(s.batch, u_ch, s.seqlen), delta=rnd(s.batch, total, s.seqlen, scale=0.5),
        A=(-torch.rand(total, s.d_state, generator=g, **param) * 2).requires_grad_(),
        B=rnd(*bc), C=rnd(*bc),
        D=torch.randn(total, generator=g, **param).requires_grad_(),
        z=rnd(s.batch, u_ch, s.seqlen) if s.z else None,
        delta_bias=torch.randn(total, generator=g, **param).requires_grad_())


def nbytes(*tensors):
    return sum(t.numel() * t.element_size() for t in tensors if t is not None)


def time_us(fn, warmup, runs):
    for _ in range(warmup):
        fn()
    starts = [torch.cuda.Event(enable_timing=True) for _ in range(runs)]
    ends = [torch.cuda.Event(enable_timing=True) for _ in range(runs)]
    for a, b in zip(starts, ends):
        a.record()
        fn()
        b.record()
    torch.cuda.synchronize()
    times = sorted(a.elapsed_time(b) * 1e3 for a, b in zip(starts, ends))
    return times[len(times) // 2]


def kernel_us(fn, reps=5):
    """GPU time of the kernels one call launches (torch.profiler), without the Python and launch
    time between them that CUDA events also count when the host is the slower side."""
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CUDA]) as prof:
        for _ in range(reps):
            fn()
        torch.cuda.synchronize()
    return sum(e.device_time_total for e in prof.key_averages()) / reps


def copy_bandwidth(warmup, runs):
    """GB/s of a large device-to-device copy: read once, written once."""
    x = torch.empty(1 << 28, device='cuda', dtype=torch.uint8)
    y = torch.empty_like(x)
    us = time_us(lambda: y.copy_(x), warmup, runs)
    return 2 * x.numel() / us / 1e3


def mamba_fn():
    try:
        from mamba_ssm.ops.selective_scan_interface import selective_scan_fn
    except ImportError:
        return None
    return selective_scan_fn


def mamba_call(selective_scan_fn, s: Shape, inputs):
    """mamba_ssm needs the routes laid out by the caller (flips and transposes, outside the
    timed call) and merged after it: only its kernel is timed, one route block per channel."""
    paths = s.paths()
    x = dict(inputs)
    K = paths.num_routes
    if not paths.is_plain_forward:
        order = paths.token_order(s.seqlen, device='cuda')

        def lay(t, shared):
            t = torch.cat([t] * K, 1) if shared else t
            t = t.view(t.shape[0], K, -1, t.shape[-1])
            idx = order.view(1, K, 1, -1).expand_as(t)
            return t.gather(-1, idx).flatten(1, 2).detach().requires_grad_()

        x['u'] = lay(x['u'], s.shared_u)
        x['delta'] = lay(x['delta'], False)
        if x['z'] is not None:
            x['z'] = lay(x['z'], s.shared_u)
        for name in ('B', 'C'):
            t = x[name] if x[name].dim() == 4 else x[name].unsqueeze(1)
            t = torch.cat([t] * (K // t.shape[1]), 1) if t.shape[1] < K else t
            x[name] = lay(t.flatten(1, 2), False).view(t.shape).detach().requires_grad_()
    return lambda: selective_scan_fn(x['u'], x['delta'], x['A'], x['B'], x['C'], x['D'], x['z'],
                                     x['delta_bias'], delta_softplus=True), x


def bench_shape(s: Shape, args):
    inputs = make_inputs(s)
    paths = s.paths()
    out_dtype = torch.float32 if s.out_fp32 else None
    rows = []

    def ours(backend):
        return lambda: selective_scan(**inputs, delta_softplus=True, paths=paths,
                                      out_dtype=out_dtype, backend=backend)

    impls = [('triton', ours('triton'), inputs), ('torch', ours('torch'), inputs)]
    fn = mamba_fn()
    if fn is not None:
        call, mamba_inputs = mamba_call(fn, s, inputs)
        impls.append(('mamba_ssm', call, mamba_inputs))
    reference = None
    for name, call, ins in impls:
        out = call()
        dout = torch.randn_like(out)
        grads_of = [t for t in ins.values() if t is not None and t.requires_grad]
        fwd = time_us(call, args.warmup, args.runs)
        y = call()

        def backward():
            return torch.autograd.grad(y, grads_of, dout, retain_graph=True)

        bwd = time_us(backward, args.warmup, args.runs)
        kernels = (kernel_us(call), kernel_us(backward)) if name == 'triton' else None
        grads = torch.autograd.grad(y, grads_of, dout, retain_graph=True)
        fwd_bytes = nbytes(*ins.values(), out)
        bwd_bytes = nbytes(*ins.values(), dout, *grads)
        if name == 'mamba_ssm' and not paths.is_plain_forward:
            diff = float('nan')  # per-route output, not merged: not comparable
        elif reference is None:
            reference, diff = out.float(), 0.0
        else:
            diff = (out.float() - reference).abs().max().item()
        rows.append((s.name, name, fwd, bwd, kernels, fwd_bytes / fwd / 1e3, bwd_bytes / bwd / 1e3,
                     diff))
        del out, y, grads
    return rows


def placeholders(s: Shape):
    """Unwritten tensors of the shape's sizes, strides and dtypes: compiling needs no values."""
    dt = DTYPES[s.dtype]
    K = s.paths().num_routes
    total = K * s.dim
    u_ch = s.dim if s.shared_u else total
    f32 = torch.float32
    bc = (s.batch, s.groups or 1, s.d_state, s.seqlen)
    return dict(u=token_rows(s, s.batch, u_ch, s.seqlen, dtype=dt),
                delta=token_rows(s, s.batch, total, s.seqlen, dtype=dt),
                A=torch.empty(total, s.d_state, dtype=f32), B=token_rows(s, *bc, dtype=dt),
                C=token_rows(s, *bc, dtype=dt), D=torch.empty(total, dtype=f32),
                z=token_rows(s, s.batch, u_ch, s.seqlen, dtype=dt) if s.z else None,
                delta_bias=torch.empty(total, dtype=f32))


#: events that launch no kernel themselves (allocations, views, containers): their children count
NO_KERNEL = re.compile(r'aten::(empty|empty_strided|empty_like|new_empty|view|_unsafe_view|'
                       r'reshape|unsqueeze|squeeze|as_strided|expand|transpose|permute|select|'
                       r'slice|split|split_with_sizes|detach|alias|to|contiguous|'
                       r'lift_fresh)$|^(?!aten::)')


def torch_launches(events):
    """Kernels the profiled torch ops launch: an op counts once, containers by their children."""
    children = {}
    for e in events:
        children.setdefault(e.cpu_parent and id(e.cpu_parent), []).append(e)

    def count(e):
        if NO_KERNEL.search(e.name):
            return sum(count(c) for c in children.get(id(e), []))
        return 1

    return sum(count(e) for e in children.get(None, []))


def codegen_reports(s: Shape):
    """(direction, Report, launches per call) of each kernel one call of the shape runs."""
    from torch.profiler import ProfilerActivity, profile

    from mmssm_kernels import codegen, triton_scan
    from mmssm_kernels.paths import ROUTE_CODES
    x = placeholders(s)
    paths = s.paths()
    codes = [ROUTE_CODES[r] for r in paths.routes]
    flags = (True, codes, list(paths.hw or ()), paths.merge or '')
    args = [x[k] for k in ('u', 'delta', 'A', 'B', 'C', 'D', 'z', 'delta_bias')]
    out_dtype = torch.float32 if s.out_fp32 else DTYPES[s.dtype]
    plan = triton_scan._plan(x['u'], x['delta'], x['A'], x['B'], x['z'], *flags)
    rows = []
    for direction, walks, tiles in (('fwd', 2, plan.fwd), ('bwd', 3, plan.bwd)):
        # element-steps one iteration of a route's walk covers in a program
        per_iteration = [tiles.block_d * s.d_state * (tiles.cols.rc if code & 2
                                                      else tiles.rows.rc * tiles.rows.vec)
                         for code in codes]
        with codegen.compiled_launches(triton_scan.scan_fwd_kernel, triton_scan.scan_bwd_kernel,
                                       triton_scan.reduce_partials_kernel) as launches, \
                profile(activities=[ProfilerActivity.CPU]) as prof:
            if direction == 'fwd':
                out, _ = triton_scan.scan_triton_fwd(*args, *flags, out_dtype)
            else:
                triton_scan.scan_triton_bwd(*args, torch.empty_like(out), None, *flags)
        n_launches = len(launches) + torch_launches(prof.events())
        for launch in launches:
            scan = launch.kernel != 'reduce_partials_kernel'
            walk_elements = [e for e in per_iteration for _ in range(walks)] if scan else None
            report = codegen.analyse(launch, walk_elements)
            est = estimate_us(launch, report, s, plan, tiles, codes, direction, scan)
            rows.append((direction if scan else 'sum', report, n_launches, est))
    return rows


def estimate_us(launch, report, s: Shape, plan, tiles, codes, direction, scan):
    """The perf model's H100 estimate (../shared/perf-model, MMSSM_PERF_MODEL): (low, mid,
    high, dominant term), or None where the model is not at hand. An estimate, not a timing."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    found = [f for f in (os.environ.get('MMSSM_PERF_MODEL', ''),
                         os.path.join(root, '..', 'shared', 'perf-model'),
                         os.path.join(root, '..', '..', 'shared', 'perf-model'))
             if f and os.path.exists(os.path.join(f, 'estimate.py'))]
    if not found:
        return None
    folder = found[0]
    sys.path.insert(0, folder)
    import estimate as model
    cubin = launch.compiled.asm['cubin']
    ins = model._instructions(model.sass_of(cubin))
    loops = model._outer_loops(ins)
    walking = [any(model._kind(text) == 'MUFU' for _, text in ins[a:b + 1]) for a, b in loops]
    if scan:
        # per route in code order: its walks (trip: walk iterations of a chunk) and its folds
        # (within a segment, then over the segments; the backward folds both ways)
        walk_trips = [(tiles.cols if code & 2 else tiles.rows) for code in codes]
        walks = iter(c.cl // c.vec for c in walk_trips for _ in range(2 if direction == 'fwd'
                                                                          else 3))
        folds = iter(t for c in walk_trips
                     for t in ((c.ss, c.rc // c.ss) if direction == 'fwd'
                               else (c.ss, c.ss, c.rc // c.ss, c.rc // c.ss)))
        trips = [next(walks) if w else next(folds, 1) for w in walking]
    else:
        trips = [plan.batch] * len(loops)  # the sums run over the batch or the channel blocks
    item = torch.tensor([], dtype=DTYPES[s.dtype]).element_size()
    K = len(codes)
    u_ch = s.dim if s.shared_u else K * s.dim
    tokens = s.batch * s.seqlen
    groups = s.groups or 1
    inputs = tokens * item * (u_ch * (2 if s.z else 1) + K * s.dim + 2 * groups * s.d_state)
    out = tokens * (4 if s.out_fp32 else item) * (s.dim if plan.merge else K * s.dim)
    parts = K * s.dim // tiles.block_d
    if not scan:
        hbm = 2 * 4 * tokens * parts * s.d_state
    elif direction == 'fwd':
        hbm = inputs + out
    else:  # + gradients, the fp32 partials of dB and dC, the entry states written and read
        hbm = (2 * inputs + out + 2 * 4 * tokens * parts * s.d_state
               + 2 * 4 * s.batch * K * s.dim * plan.slots(tiles) * plan.block_n)
    e = model.estimate(cubin, launch.grid, report.num_warps, report.per_sm, trips, hbm)
    return e['low_us'], e['mid_us'], e['high_us'], max(e['terms'], key=e['terms'].get)


#: registers a kernel may use: 128 keeps 16 warps on an SM (triton_scan.MAX_REGISTERS)
REG_BUDGET = 128
#: the issue's gates: resident warps per scheduler (on the full-size shapes), launches per call
MIN_WARPS_PER_SCHEDULER = 4
MAX_LAUNCHES = 2


def print_codegen(shapes, check, full_size):
    import triton

    from mmssm_kernels.codegen import SMS
    head = (f'{"shape":22} {"kernel":4} {"programs":>8} {"warps":>5} {"regs":>4} {"spill_B":>7} '
            f'{"smem":>6} {"per_SM":>6} {"w/sched":>7} {"SHFL/e":>6} {"MUFU/e":>6} '
            f'{"v-loads":>7} {"t-lanes":>7} {"rev":>3} {"launches":>8}  {"est_us"}')
    print(f'sm_90 code generation (triton {triton.__version__}, {SMS} SMs); SHFL, MUFU per '
          f'element-step of the call (all walks through the tokens); w/sched: warps resident per '
          f'scheduler; t-lanes: threads a scan spans along time; est_us: ../shared/perf-model\'s '
          f'H100 ESTIMATE mid[low-high] and its dominant term (not a measurement)')
    print(head)
    print('-' * len(head))
    failures = []
    for s in shapes:
        for direction, r, n_launches, est in codegen_reports(s):
            est = f'{est[1]:.0f}[{est[0]:.0f}-{est[2]:.0f}]{est[3]}' if est else '-'
            print(f'{s.name:22} {direction:4} {r.programs:8d} {r.num_warps:5d} {r.regs:4d} '
                  f'{r.spill_bytes:7d} {r.smem:6d} {r.per_sm:6d} {r.warps_per_scheduler:7.2f} '
                  f'{r.shfl:6.2f} {r.mufu:6.2f} {r.vec_loads:>7} {r.scan_lanes:7d} '
                  f'{r.reverse_scans:3d} {n_launches:8d}  {est}')
            where = f'{s.name} {direction} {r.kernel}'
            if r.spill_bytes or r.regs > REG_BUDGET:
                failures.append(f'{where}: {r.regs} registers (budget {REG_BUDGET}), '
                                f'{r.spill_bytes} bytes spilled')
            if r.scan_lanes > 1 or r.reverse_scans:
                failures.append(f'{where}: a scan spans {r.scan_lanes} threads along time, '
                                f'{r.reverse_scans} reverse scans')
            if n_launches > MAX_LAUNCHES:
                failures.append(f'{where}: {n_launches} launches per call (at most '
                                f'{MAX_LAUNCHES})')
            if full_size and r.warps_per_scheduler < MIN_WARPS_PER_SCHEDULER:
                failures.append(f'{where}: {r.warps_per_scheduler:.2f} warps per scheduler (at '
                                f'least {MIN_WARPS_PER_SCHEDULER})')
    if check and failures:
        sys.exit('codegen gates failed:\n  ' + '\n  '.join(failures))


SMALL_SHAPES = [  # the issue shapes shrunk for a quick compile (tests)
    Shape('Vim-S small', 2, 64, 100, 16, path='bidirectional', aligned_rows=True),
    Shape('VMamba-T small', 2, 8, 16 * 12, 1, path='cross2d', hw=(16, 12), groups=4, z=False,
          shared_u=True, out_fp32=True),
    Shape('MambaVision-T small', 2, 32, 96, 8, z=False),
]


def main():
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('--warmup', type=int, default=5)
    p.add_argument('--runs', type=int, default=30)
    p.add_argument('--batch', type=int)
    p.add_argument('--dim', type=int, help='channels per route')
    p.add_argument('--seqlen', type=int)
    p.add_argument('--d-state', type=int, default=16)
    p.add_argument('--path', default='forward',
                   choices=['forward', 'reverse', 'bidirectional', 'cross2d'])
    p.add_argument('--hw', type=int, nargs=2, help='token grid of cross2d')
    p.add_argument('--groups', type=int, default=0, help='B/C groups (0: 3-D B/C)')
    p.add_argument('--no-z', action='store_true')
    p.add_argument('--shared-u', action='store_true', help='one u/z block for all routes')
    p.add_argument('--out-fp32', action='store_true')
    p.add_argument('--dtype', default='bf16', choices=list(DTYPES))
    p.add_argument('--codegen', action='store_true',
                   help='compile for sm_90 and print what the kernels compile to (no GPU needed)')
    p.add_argument('--small', action='store_true', help='--codegen on small shapes')
    p.add_argument('--check', action='store_true',
                   help='--codegen: fail on a spill or a register budget exceeded')
    args = p.parse_args()
    if args.codegen:
        # the interpreter's kernels have no compiled form
        os.environ.pop('TRITON_INTERPRET', None)
    if not args.codegen and not torch.cuda.is_available():
        sys.exit('benchmark_scan.py needs a CUDA GPU')
    if args.batch:
        shapes = [Shape('custom', args.batch, args.dim, args.seqlen, args.d_state, args.path,
                        tuple(args.hw) if args.hw else None, args.groups, not args.no_z,
                        args.shared_u, args.out_fp32, args.dtype)]
    else:
        shapes = SMALL_SHAPES if args.small else ISSUE_SHAPES
    if args.codegen:
        print_codegen(shapes, args.check, not args.small)
        return
    copy_gbs = copy_bandwidth(args.warmup, args.runs)
    print(f'{torch.cuda.get_device_name()}: device copy {copy_gbs:.0f} GB/s; median of '
          f'{args.runs} runs after {args.warmup} warm-up')
    head = (f'{"shape":22} {"impl":9} {"fwd us":>9} {"bwd us":>9} {"kernels us":>13} '
            f'{"fwd GB/s":>9} {"bwd GB/s":>9} {"fwd %cp":>7} {"bwd %cp":>7} {"max|diff|":>9} '
            f'{"target us":>11} {"issue mamba":>11}')
    print(head)
    print('-' * len(head))
    for s in shapes:
        for shape, impl, fwd, bwd, kernels, fgb, bgb, diff in bench_shape(s, args):
            target = f'{s.target[0]:.0f}/{s.target[1]:.0f}' if s.target else '-'
            issue = f'{s.mamba_issue[0]:.0f}/{s.mamba_issue[1]:.0f}' if s.mamba_issue else '-'
            kern = f'{kernels[0]:.0f}/{kernels[1]:.0f}' if kernels else '-'
            print(f'{shape:22} {impl:9} {fwd:9.1f} {bwd:9.1f} {kern:>13} {fgb:9.0f} {bgb:9.0f} '
                  f'{100 * fgb / copy_gbs:6.0f}% {100 * bgb / copy_gbs:6.0f}% {diff:9.2e} '
                  f'{target:>11} {issue:>11}')
        torch.cuda.empty_cache()


if __name__ == '__main__':
    main()
