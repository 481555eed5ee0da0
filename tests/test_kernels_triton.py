"""The Triton selective scan against the PyTorch oracle: outputs, last states and every gradient,
for each scan path, dtype, B/C grouping and u sharing. Without a GPU the kernels run in Triton's
interpreter (tests/conftest.py), which is slow, so the shapes stay small."""
import os
import subprocess
import sys

import pytest
import torch

import mmssm_kernels.triton_scan as triton_scan
from mmssm_kernels import ScanPaths, selective_scan, selective_scan_ref

DEVICE = 'cuda' if torch.cuda.is_available() else 'cpu'
# (rtol, atol) like mamba_ssm's tests; half inputs are compared with the oracle run on the same
# half values upcast to fp32
TOL = {torch.float32: (6e-4, 2e-3), torch.float16: (3e-3, 5e-3), torch.bfloat16: (3e-2, 5e-2)}
GRAD_NAMES = ('u', 'delta', 'A', 'B', 'C', 'D', 'z', 'delta_bias')

PATHS = {
    'forward': (ScanPaths.forward(), (3, 5)),
    'reverse': (ScanPaths.reverse(), (3, 5)),
    'bidirectional': (ScanPaths.bidirectional(), (3, 5)),
    'cross2d': (ScanPaths.cross2d((3, 5)), (3, 5)),
    'cross2d_unmerged': (ScanPaths.cross2d((3, 5), merge=None), (3, 5)),
}


def make_inputs(batch=2, K=1, dim=4, N=3, L=15, G=None, shared_u=False, z=True, D=True,
                bias=True, dtype=torch.float32, seed=0):
    """G None: B/C (batch, N, L); else grouped (batch, G, N, L)."""
    g = torch.Generator().manual_seed(seed)
    total = K * dim
    u_ch = dim if shared_u else total

    def rnd(*shape, scale=1.0):
        return (scale * torch.randn(*shape, generator=g)).to(DEVICE, dtype)

    bc = (batch, N, L) if G is None else (batch, G, N, L)
    return dict(u=rnd(batch, u_ch, L), delta=rnd(batch, total, L, scale=0.5),
                A=(-torch.rand(total, N, generator=g) * 2).to(DEVICE),
                B=rnd(*bc), C=rnd(*bc),
                D=torch.randn(total, generator=g).to(DEVICE) if D else None,
                z=rnd(batch, u_ch, L) if z else None,
                delta_bias=torch.randn(total, generator=g).to(DEVICE) if bias else None)


def run(fn, inputs, upcast=False, **kw):
    """Output, last state and the gradients of a fixed weighting of both."""
    leaves = {k: None if v is None else (v.float() if upcast else v.clone()).requires_grad_()
              for k, v in inputs.items()}
    out, last = fn(**leaves, return_last_state=True, **kw)
    gen = torch.Generator().manual_seed(1)
    w_out = torch.randn(out.shape, generator=gen).to(out.device)
    w_last = torch.randn(last.shape, generator=gen).to(out.device)
    ((out.float() * w_out).sum() + (last * w_last).sum()).backward()
    return out, last, {k: v.grad for k, v in leaves.items() if v is not None}


def assert_matches(inputs, paths, dtype, oracle=selective_scan_ref, **kw):
    kw = dict(delta_softplus=True, paths=paths, **kw)
    out, last, grads = run(selective_scan, inputs, backend='triton', **kw)
    ref_out, ref_last, ref_grads = run(oracle, inputs, upcast=True, **kw)
    rtol, atol = TOL[dtype]
    assert out.dtype == (kw.get('out_dtype') or dtype)
    torch.testing.assert_close(out.float(), ref_out.float(), rtol=rtol, atol=atol)
    torch.testing.assert_close(last, ref_last, rtol=rtol, atol=atol)
    for name in GRAD_NAMES:
        if name in grads:
            assert grads[name].dtype == inputs[name].dtype, name
            assert grads[name].shape == inputs[name].shape, name
            torch.testing.assert_close(grads[name].float(), ref_grads[name].float(),
                                       rtol=rtol, atol=2 * atol, msg=lambda m: f'd{name}: {m}')


@pytest.fixture
def few_chunks(monkeypatch):
    """At most two chunks per route, so that a chunk's walk spans several vectors (short
    sequences otherwise get a chunk per vector) while the carry fold still joins chunks."""
    monkeypatch.setattr(triton_scan, 'MAX_CHUNKS', 2)
    # the chunks live in the cached plan
    triton_scan.plan_of.cache_clear()
    yield
    triton_scan.plan_of.cache_clear()


def grouping_kw(grouping, K):
    return {'3d': dict(G=None), 'G=K': dict(G=K), 'G=1': dict(G=1)}[grouping]


def size_kw(K):
    """The interpreter's scan costs per element: fewer channels where there are more routes."""
    return dict(batch=2, dim=4) if K == 1 else dict(batch=1, dim=2)


CASES = [(name, grouping, shared) for name in PATHS for grouping in ('3d', 'G=K', 'G=1')
         for shared in (False, True)
         if not (shared and PATHS[name][0].num_routes == 1)
         and not (grouping == 'G=K' and PATHS[name][0].num_routes == 1)]


@pytest.mark.parametrize('name,grouping,shared', CASES)
def test_paths_groupings_fp32(few_chunks, name, grouping, shared):
    paths, (H, W) = PATHS[name]
    K = paths.num_routes
    inputs = make_inputs(K=K, L=H * W, shared_u=shared, **grouping_kw(grouping, K), **size_kw(K))
    assert_matches(inputs, paths, torch.float32)


@pytest.mark.parametrize('dtype', [torch.float16, torch.bfloat16])
@pytest.mark.parametrize('name', list(PATHS))
def test_paths_half(few_chunks, name, dtype):
    paths, (H, W) = PATHS[name]
    K = paths.num_routes
    inputs = make_inputs(K=K, L=H * W, G=K, shared_u=K == 4, dtype=dtype, **size_kw(K))
    assert_matches(inputs, paths, dtype)


def test_fp32_output_from_half_inputs(few_chunks):
    """VMamba's call: bf16 inputs, shared u, merged cross-scan, fp32 output."""
    paths = ScanPaths.cross2d((4, 3))
    inputs = make_inputs(K=4, dim=2, N=1, L=12, G=4, shared_u=True, z=False,
                         dtype=torch.bfloat16)
    assert_matches(inputs, paths, torch.bfloat16, out_dtype=torch.float32)


@pytest.mark.parametrize('z,D,bias,softplus', [(False, False, False, False),
                                               (True, False, True, False),
                                               (False, True, False, True)])
def test_optional_arguments(few_chunks, z, D, bias, softplus):
    inputs = make_inputs(L=13, z=z, D=D, bias=bias)
    out, last, grads = run(selective_scan, inputs, backend='triton', delta_softplus=softplus)
    ref_out, ref_last, ref_grads = run(selective_scan_ref, inputs, delta_softplus=softplus)
    torch.testing.assert_close(out, ref_out, rtol=6e-4, atol=2e-3)
    assert set(grads) == set(ref_grads)
    for name in grads:
        torch.testing.assert_close(grads[name], ref_grads[name], rtol=6e-4, atol=4e-3)


def test_return_last_state():
    inputs = make_inputs(K=2, L=9)
    paths = ScanPaths.bidirectional(merge=None)
    kw = dict(delta_softplus=True, paths=paths)
    out = selective_scan(**inputs, backend='triton', **kw)
    out2, last = selective_scan(**inputs, backend='triton', return_last_state=True, **kw)
    assert torch.equal(out, out2)
    assert last.shape == (2, 8, 3) and last.dtype == torch.float32
    _, ref_last = selective_scan_ref(**inputs, return_last_state=True, **kw)
    torch.testing.assert_close(last, ref_last, rtol=6e-4, atol=2e-3)


def test_strided_inputs(few_chunks):
    """Channels-last u/z/delta and B/C sliced out of a wider tensor are read in place."""
    inputs = make_inputs(K=4, L=15, G=4, shared_u=True, **size_kw(4))
    for name in ('u', 'z', 'delta'):
        inputs[name] = inputs[name].transpose(1, 2).contiguous().transpose(1, 2)
    for name in ('B', 'C'):
        wide = torch.cat([inputs[name], inputs[name]], dim=-2)
        inputs[name] = wide[:, :, ::2]
        assert not inputs[name].is_contiguous()
    assert not inputs['u'].is_contiguous()
    assert_matches(inputs, ScanPaths.cross2d((5, 3)), torch.float32)


def test_deterministic():
    inputs = make_inputs(K=4, L=12, G=1, shared_u=True, **size_kw(4))
    paths = ScanPaths.cross2d((3, 4))
    first = run(selective_scan, inputs, backend='triton', delta_softplus=True, paths=paths)
    second = run(selective_scan, inputs, backend='triton', delta_softplus=True, paths=paths)
    assert torch.equal(first[0], second[0])
    for name in first[2]:
        assert torch.equal(first[2][name], second[2][name]), name


def test_wide_interpreter_tiles_give_the_same_scan():
    """The benchmark's saved-activation meter runs the kernels in the interpreter with one
    program per 16 channels here (the H100's tiles: 4 forward, 2 backward)."""
    inputs = make_inputs(batch=1, K=2, dim=16, L=15)
    args = (1, 2 * 16, 15, 3, 1, 32, 32, True, (0, 1), (), 'mean', 4)
    h100 = triton_scan.plan_of(*args)
    assert (h100.fwd.block_d, h100.bwd.block_d) == (4, 2)
    with triton_scan.wide_interpreter_tiles():
        wide = triton_scan.plan_of(*args)
        assert wide.fwd.block_d == wide.bwd.block_d == 16
        assert_matches(inputs, ScanPaths.bidirectional(), torch.float32)
    assert triton_scan.plan_of(*args) == h100


@pytest.mark.parametrize('paths,L', [(ScanPaths.bidirectional(), 97),
                                     (ScanPaths.cross2d((45, 47)), 45 * 47)])
def test_long_sequence(paths, L):
    """Many chunks per route (hundreds of column chunks), odd lengths, a partial last chunk."""
    inputs = make_inputs(batch=1, K=paths.num_routes, dim=1, N=1, L=L, G=1, shared_u=True)
    assert_matches(inputs, paths, torch.float32)


@pytest.mark.parametrize('paths', [ScanPaths.forward(), ScanPaths(('col', ), hw=(3, 21847))])
def test_very_long_sequence(paths):
    """L > 65536 (chunks of dozens of vectors, over a thousand of them), against the
    (oracle-tested) PyTorch scan: the oracle's token loop would take minutes. On the CPU only the
    forward, ~10 s per route in the interpreter (the backwards are checked over thousands of steps
    above)."""
    inputs = make_inputs(batch=1, dim=1, N=1, L=65541, z=False)
    if DEVICE == 'cuda':
        assert_matches(inputs, paths, torch.float32,
                       oracle=lambda **kw: selective_scan(**kw, backend='torch'))
        return
    kw = dict(delta_softplus=True, return_last_state=True, paths=paths)
    out, last = selective_scan(**inputs, backend='triton', **kw)
    ref_out, ref_last = selective_scan(**inputs, backend='torch', **kw)
    torch.testing.assert_close(out, ref_out, rtol=6e-4, atol=2e-3)
    torch.testing.assert_close(last, ref_last, rtol=6e-4, atol=2e-3)


@pytest.mark.parametrize('change,error', [
    (dict(A=torch.zeros(4, 3, dtype=torch.float16)), TypeError),
    (dict(u=torch.zeros(2, 4, 15, dtype=torch.int32)), TypeError),
    (dict(u=torch.zeros(2, 4, 14)), ValueError),
    (dict(B=torch.zeros(2, 3, 3, 15)), ValueError),
    (dict(D=torch.zeros(5)), ValueError),
])
def test_bad_arguments(change, error):
    inputs = make_inputs()
    inputs.update({k: v.to(DEVICE) for k, v in change.items()})
    with pytest.raises(error):
        selective_scan(**inputs, backend='triton')


def test_too_large_for_32_bit_offsets():
    with pytest.raises(ValueError, match='32-bit'):
        triton_scan.plan_of(64, 1024, 2**16, 16, 1, 1024, None, True, (0, ), (), '', 2)


def test_bad_grid():
    inputs = make_inputs(K=4, L=15)
    with pytest.raises(ValueError, match='hw'):
        selective_scan(**inputs, backend='triton', paths=ScanPaths.cross2d((4, 4)))


@pytest.mark.parametrize('batch,L,paths', [(0, 15, ScanPaths.bidirectional()),
                                           (2, 0, ScanPaths.forward()),
                                           (2, 0, ScanPaths.bidirectional(merge=None))])
def test_empty_batch_or_sequence_gives_empty_results_on_both_backends(batch, L, paths):
    K = paths.num_routes
    inputs = make_inputs(batch=batch, K=K, L=L, G=K)
    results = {}
    for backend in ('torch', 'triton'):
        out, last, grads = run(selective_scan, inputs, backend=backend, delta_softplus=True,
                               paths=paths)
        dim = 4 if paths.merge else 4 * K
        assert out.shape == (batch, dim, L) and last.shape == (batch, 4 * K, 3)
        assert set(grads) == {k for k, v in inputs.items() if v is not None}
        results[backend] = (out, last, grads)
    torch.testing.assert_close(results['torch'][1], torch.zeros(batch, 4 * K, 3, device=DEVICE))
    torch.testing.assert_close(results['triton'][1], results['torch'][1])
    for name, grad in results['torch'][2].items():
        assert grad.shape == inputs[name].shape, name
        torch.testing.assert_close(results['triton'][2][name], grad, msg=name)


@pytest.mark.parametrize('out_dtype', [torch.int32, torch.float64, 'float32'])
@pytest.mark.parametrize('backend', ['torch', 'triton'])
def test_out_dtype_must_be_floating(backend, out_dtype):
    with pytest.raises(TypeError, match='out_dtype must be a floating type'):
        selective_scan(**make_inputs(), out_dtype=out_dtype, backend=backend)


def test_triton_backend_on_cpu_tensors_without_interpreter_says_so():
    """Without TRITON_INTERPRET=1 the kernels compile for a GPU: CPU tensors get an error that
    names the fix, not a crash inside Triton. Triton is chosen here by the global default, the
    environment variable MMSSM_SCAN_BACKEND."""
    code = ('import torch; from mmssm_kernels import selective_scan; '
            'x = torch.zeros(1, 2, 5); '
            'selective_scan(x, x, torch.zeros(2, 3), torch.zeros(1, 3, 5), torch.zeros(1, 3, 5))')
    env = {k: v for k, v in os.environ.items() if k != 'TRITON_INTERPRET'}
    env['MMSSM_SCAN_BACKEND'] = 'triton'
    env['PYTHONPATH'] = os.pathsep.join(p for p in sys.path if p)
    done = subprocess.run([sys.executable, '-c', code], env=env, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode != 0
    last_line = done.stderr.strip().splitlines()[-1]
    assert "backend='triton' needs CUDA tensors, got cpu" in last_line, done.stderr
    assert 'TRITON_INTERPRET=1' in last_line and "backend='torch'" in last_line
