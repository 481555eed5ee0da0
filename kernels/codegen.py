"""What the Triton kernels compile to on an H100 (sm_90), read on a machine without a GPU.

The triton wheel ships ``ptxas`` and ``cuobjdump``, so a launch can be compiled for sm_90 here
instead of run: :func:`compiled_launches` replaces every launch of the scan's kernels with such a
compile, through Triton's own argument binder (the same specialisation as a real launch), and
:func:`analyse` reads registers, spills and shared memory from the cubin, and per element-step
(one (batch, channel, state, token) recurrence step) the shuffles, special-function (MUFU)
instructions and global loads inside the kernel's loops from the PTX, and the lanes each scan
spans along its axis from the TTGIR. This is no timing: it says whether the code generation is what
a kernel's design intends (no spills, no shuffles along time, vector loads, enough programs) and
gates regressions where no GPU is lent. Import it with TRITON_INTERPRET unset: the interpreter
replaces the kernels by Python functions that have no compiled form.
"""
import os
import re
import subprocess
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass

import triton
from triton.backends.compiler import GPUTarget
from triton.compiler import ASTSource, make_backend
from triton.runtime.jit import create_function_from_signature

TARGET = GPUTarget('cuda', 90, 32)
SMS = 132  # H100 SXM
REGS_PER_SM = 65536
SMEM_PER_SM = 228 * 1024
MAX_WARPS_PER_SM = 64
BIN = os.path.join(os.path.dirname(triton.__file__), 'backends', 'nvidia', 'bin')
MUFU = re.compile(r'\b(ex2|lg2|rcp|rsqrt|sqrt\.approx|sin|cos|tanh|div\.full|div\.approx)\.')


@dataclass
class Launch:
    kernel: str
    grid: tuple
    constexprs: dict
    compiled: object  # triton CompiledKernel


@contextmanager
def compiled_launches(*jitfns):
    """Within the block, a launch of one of ``jitfns`` compiles it for sm_90 and appends a
    :class:`Launch` to the yielded list instead of running (its outputs stay unwritten)."""
    backend = make_backend(TARGET)
    launches = []
    saved = [fn.run for fn in jitfns]

    def interceptor(fn):
        binder = create_function_from_signature(fn.signature, fn.params, backend)

        def run(*args, grid, warmup, **kwargs):
            kwargs.setdefault('debug', False)
            bound, spec, opts = binder(*args, **kwargs)
            options, signature, constexprs, attrs = fn._pack_args(backend, kwargs, bound, spec,
                                                                  opts)
            compiled = triton.compile(ASTSource(fn, signature, constexprs, attrs), target=TARGET,
                                      options=options.__dict__)
            names = {p.name for p in fn.params if p.is_constexpr}
            launches.append(Launch(fn.__name__, tuple(grid),
                                   {k: v for k, v in kwargs.items() if k in names}, compiled))
        return run

    for fn in jitfns:
        fn.run = interceptor(fn)
    try:
        yield launches
    finally:
        for fn, run in zip(jitfns, saved):
            fn.run = run


def _tool(name, *args):
    return subprocess.run([os.path.join(BIN, name), *args], capture_output=True, text=True)


def cubin_resources(cubin: bytes):
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, 'k.cubin')
        with open(path, 'wb') as f:
            f.write(cubin)
        out = _tool('cuobjdump', '--dump-resource-usage', path).stdout
    regs, local = re.search(r'REG:(\d+) STACK:\d+ SHARED:\d+ LOCAL:(\d+)', out).groups()
    return int(regs), int(local)


def spill_bytes(ptx: str):
    """Spill stores + loads as ptxas reports them compiling ``ptx`` for sm_90a."""
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, 'k.ptx')
        with open(path, 'w') as f:
            f.write(ptx)
        log = _tool('ptxas', '-v', '--gpu-name=sm_90a', path, '-o', path + '.cubin').stderr
    found = re.findall(r'(\d+) bytes spill stores, (\d+) bytes spill loads', log)
    if not found:
        raise RuntimeError(f'ptxas gave no spill report:\n{log}')
    return sum(int(s) + int(l) for s, l in found)


def loop_bodies(ptx: str):
    """The instruction lines of each outermost loop of ``ptx`` (a label with a branch back)."""
    lines = ptx.splitlines()
    labels = {m.group(1): i for i, line in enumerate(lines)
              if (m := re.match(r'^(\$L__\w+):', line.strip()))}
    spans = []
    for j, line in enumerate(lines):
        m = re.search(r'\bbra(?:\.uni)?\s+(\$L__\w+);', line)
        if m and labels.get(m.group(1), j) < j:
            spans.append((labels[m.group(1)], j))
    outer = [s for s in spans if not any(o[0] <= s[0] and s[1] <= o[1] and o != s for o in spans)]
    return [lines[a:b + 1] for a, b in sorted(set(outer))]


def scan_lanes(ttgir: str):
    """For each ``tt.scan``: the threads (lanes x warps) that share its scan axis (1: the scan runs
    inside a thread), and whether it is a reverse scan."""
    layouts = dict(re.findall(r'^(#\w+) = #ttg\.blocked<\{(.*?)\}>', ttgir, re.M))
    scans = []
    for m in re.finditer(r'"tt\.scan"\((.*?)\) <\{axis = (\d+) : i32, reverse = (\w+)\}>.*?'
                         r'tensor<[^,>]*, (#\w+)>', ttgir, re.S):
        axis, reverse, layout = int(m.group(2)), m.group(3) == 'true', m.group(4)
        attrs = layouts.get(layout, '')
        lanes = re.search(r'threadsPerWarp = \[([^\]]*)\]', attrs)
        warps = re.search(r'warpsPerCTA = \[([^\]]*)\]', attrs)
        across = (int(lanes.group(1).split(',')[axis]) * int(warps.group(1).split(',')[axis])
                  if lanes and warps else 0)  # 0: a layout this parser does not read
        scans.append((across, reverse))
    return scans


def programs_per_sm(num_warps, regs, smem):
    threads = 32 * num_warps
    by_regs = REGS_PER_SM // (((regs + 7) // 8) * 8 * threads)
    by_smem = SMEM_PER_SM // (smem + 1024) if smem else 32
    return min(by_regs, by_smem, MAX_WARPS_PER_SM // num_warps, 32)


@dataclass
class Report:
    kernel: str
    programs: int
    num_warps: int
    regs: int
    spill_bytes: int
    smem: int
    per_sm: int  # programs resident per SM (registers, shared memory, warps)
    shfl: float  # per element-step of the call, summed over the walks through the tokens
    mufu: float
    vec_loads: str  # vectorised / all global loads inside the walks
    scan_lanes: int  # most threads any scan spans along its axis (1: in-thread; 0: no scan)
    reverse_scans: int
    scan: bool = True  # False: a kernel that is no scan (the backward's sums of partials)

    @property
    def waves(self):
        return self.programs / (SMS * self.per_sm)

    @property
    def warps_per_scheduler(self):
        """Warps resident on each of the SMs' 4 schedulers (the issue's programs x warps / 528,
        bounded by what fits on an SM)."""
        return min(self.programs, SMS * self.per_sm) * self.num_warps / (4 * SMS)


def analyse(launch: Launch, walk_elements) -> Report:
    """``walk_elements`` (None for a kernel that is no scan): for each walk through the tokens
    the kernel makes, in code order, the element-steps one iteration of it covers in one
    program. A walk is an outermost loop with
    special-function instructions (the carry folds have none); its instruction counts are
    normalised per element-step and summed over the walks of a route, then averaged over the
    routes, so a figure is what one element-step of the call costs."""
    scan = walk_elements is not None
    k = launch.compiled
    num_warps = k.metadata.num_warps
    regs, _ = cubin_resources(k.asm['cubin'])
    threads = 32 * num_warps
    walks = [body for body in loop_bodies(k.asm['ptx'])
             if walk_elements is None or any(MUFU.search(line) for line in body)]
    if walk_elements is None:
        walk_elements = [float('inf')] * len(walks)  # no per-element figures
    elif not walks:
        # walks of one iteration (short sequences) are straight-line code: the whole kernel
        # holds each of them once
        walks = [k.asm['ptx'].splitlines()]
        walk_elements = [len(walk_elements) * len(walk_elements)
                         / sum(1 / e for e in walk_elements)]
    elif len(walks) != len(walk_elements):
        raise RuntimeError(f'{launch.kernel}: expected {len(walk_elements)} walks through the '
                           f'tokens, found {len(walks)} loops with special-function instructions')
    routes = launch.constexprs.get('K', 1)

    def per_element(pattern):
        return sum(sum(bool(re.search(pattern, line)) for line in body) * threads / e
                   for body, e in zip(walks, walk_elements)) / routes

    loads = [line for body in walks for line in body if re.search(r'\bld\.global', line)]
    vector = [line for line in loads if re.search(r'\.v[248]\.', line)]
    scans = scan_lanes(k.asm['ttgir'])
    programs = 1
    for g in launch.grid:
        programs *= g
    return Report(launch.kernel, programs, num_warps, regs, spill_bytes(k.asm['ptx']),
                  k.metadata.shared, programs_per_sm(num_warps, regs, k.metadata.shared),
                  per_element(r'\bshfl\.sync'), per_element(MUFU.pattern),
                  f'{len(vector)}/{len(loads)}', max((a for a, _ in scans), default=0),
                  sum(r for _, r in scans), scan)
