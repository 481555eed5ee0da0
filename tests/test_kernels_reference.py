"""The PyTorch scan (the CPU path) against the token-by-token oracle, and the scan paths against
explicit flips and transposes."""
import pytest
import torch

from mmssm_kernels import ScanPaths, interface, selective_scan, selective_scan_ref, torch_scan


def make_inputs(batch=2, K=1, dim=6, N=4, L=37, G=1, shared_u=False, z=True, dtype=torch.float32,
                seed=0):
    g = torch.Generator().manual_seed(seed)
    total = K * dim

    def rnd(*shape, scale=1.0):
        return (scale * torch.randn(*shape, generator=g)).to(dtype).requires_grad_()

    u_ch = dim if shared_u else total
    return dict(
        u=rnd(batch, u_ch, L), delta=rnd(batch, total, L, scale=0.5),
        A=(-torch.rand(total, N, generator=g) * 2).requires_grad_(),
        B=rnd(batch, G, N, L) if G else rnd(batch, N, L),
        C=rnd(batch, G, N, L) if G else rnd(batch, N, L),
        D=torch.randn(total, generator=g).requires_grad_(),
        z=rnd(batch, u_ch, L) if z else None,
        delta_bias=torch.randn(total, generator=g).requires_grad_())


def run(fn, inputs, **kw):
    out, last = fn(**inputs, delta_softplus=True, return_last_state=True, **kw)
    weights = torch.cos(torch.arange(out.numel(), dtype=torch.float32)).view_as(out)
    loss = (out.float() * weights).sum() + last.sum()
    leaves = [v for v in inputs.values() if v is not None]
    return out, last, torch.autograd.grad(loss, leaves)


def assert_close_all(a, b, rtol, atol):
    for x, y in zip(a[:2], b[:2]):
        torch.testing.assert_close(x.float(), y.float(), rtol=rtol, atol=atol)
    for gx, gy in zip(a[2], b[2]):
        torch.testing.assert_close(gx.float(), gy.float(), rtol=rtol, atol=atol)


CASES = [
    # paths, K, G (0 = B/C without a group dim), shared u/z, L
    (ScanPaths.forward(), 1, 0, False, 37),
    (ScanPaths.forward(), 1, 3, False, 70),
    (ScanPaths.reverse(), 1, 1, False, 65),
    (ScanPaths.bidirectional(), 2, 2, False, 33),
    (ScanPaths.bidirectional(merge=None), 2, 0, False, 20),
    (ScanPaths.cross2d((5, 7)), 4, 4, True, 35),
    (ScanPaths.cross2d((3, 4), merge=None), 4, 1, True, 12),
    (ScanPaths.cross2d((4, 3)), 4, 8, True, 12),
]


@pytest.mark.parametrize('paths,K,G,shared,L', CASES)
def test_chunked_scan_matches_oracle(paths, K, G, shared, L):
    inputs = make_inputs(K=K, G=G, shared_u=shared, L=L)
    fast = run(selective_scan, inputs, paths=paths, backend='torch')
    ref = run(selective_scan_ref, inputs, paths=paths)
    assert_close_all(fast, ref, rtol=6e-4, atol=2e-3)


@pytest.mark.parametrize('paths,K,G,shared,L', CASES[2:])
def test_short_chunks_match_oracle(paths, K, G, shared, L, monkeypatch):
    """Chunks of 8 steps (states saved every 8, a no-grad forward in 8-step chunks): each chunk
    starts from the state the one before left, the backward carries the adjoint state back."""
    monkeypatch.setattr(torch_scan, 'SAVE_EVERY', 8)
    monkeypatch.setattr(torch_scan, 'WORKSET', 1)
    inputs = make_inputs(K=K, G=G, shared_u=shared, L=L, seed=1)
    fast = run(selective_scan, inputs, paths=paths, backend='torch')
    assert_close_all(fast, run(selective_scan_ref, inputs, paths=paths), rtol=6e-4, atol=2e-3)
    with torch.no_grad():
        out = selective_scan(**inputs, delta_softplus=True, paths=paths, backend='torch')
    torch.testing.assert_close(out, fast[0])


@pytest.mark.parametrize('dtype', [torch.float16, torch.bfloat16])
def test_half_inputs_keep_fp32_state(dtype):
    inputs = make_inputs(K=2, G=2, dtype=dtype, L=40)
    out, last, grads = run(selective_scan, inputs, paths=ScanPaths.bidirectional(), backend='torch')
    assert out.dtype == dtype and last.dtype == torch.float32
    assert [g.dtype for g in grads] == [v.dtype for v in inputs.values() if v is not None]
    upcast = {k: None if v is None else v.detach().float().requires_grad_() for k, v in inputs.items()}
    ref = run(selective_scan_ref, upcast, paths=ScanPaths.bidirectional())
    assert_close_all((out, last, grads), ref, rtol=3e-2, atol=5e-2)


def test_out_dtype_float32_from_half():
    inputs = make_inputs(dtype=torch.bfloat16)
    out = selective_scan(**inputs, out_dtype=torch.float32, backend='torch')
    assert out.dtype == torch.float32


def test_long_sequence_crosses_many_chunks():
    inputs = make_inputs(batch=1, dim=2, N=2, L=2500, z=False)
    fast = run(selective_scan, inputs, backend='torch')
    ref = run(selective_scan_ref, inputs)
    assert_close_all(fast, ref, rtol=6e-4, atol=2e-3)


def _explicit_cross2d(inputs, H, W):
    """VMamba's cross-scan/cross-merge done with copies, one plain forward scan per route."""
    u, delta, z = inputs['u'], inputs['delta'], inputs['z']
    b, dim = u.shape[:2]

    def col(x):
        return x.view(*x.shape[:-1], H, W).transpose(-1, -2).reshape(x.shape)

    def col_inv(y):
        return y.view(*y.shape[:-1], W, H).transpose(-1, -2).reshape(y.shape)

    routes = [lambda x: x, col, lambda x: x.flip(-1), lambda x: col(x).flip(-1)]
    undo = [lambda y: y, col_inv, lambda y: y.flip(-1), lambda y: col_inv(y.flip(-1))]
    out = 0
    for k in range(4):
        sl = slice(k * dim, (k + 1) * dim)
        y = selective_scan_ref(routes[k](u), routes[k](delta[:, sl]), inputs['A'][sl],
                               routes[k](inputs['B'][:, k]), routes[k](inputs['C'][:, k]),
                               inputs['D'][sl], routes[k](z), inputs['delta_bias'][sl],
                               delta_softplus=True)
        out = out + undo[k](y)
    return out


def test_cross2d_routes_equal_explicit_transposes_and_flips():
    H, W = 3, 5
    inputs = make_inputs(K=4, G=4, shared_u=True, L=H * W)
    out = selective_scan(**inputs, delta_softplus=True, paths=ScanPaths.cross2d((H, W)),
                         backend='torch')
    torch.testing.assert_close(out, _explicit_cross2d(inputs, H, W), rtol=1e-5, atol=1e-5)


def test_bidirectional_equals_flipped_scan():
    inputs = make_inputs(K=2, G=2, L=19)
    out = selective_scan(**inputs, delta_softplus=True, paths=ScanPaths.bidirectional(),
                         backend='torch')
    u, d, A, B, C, D, z, bias = (inputs[k] for k in ('u', 'delta', 'A', 'B', 'C', 'D', 'z', 'delta_bias'))
    dim = A.shape[0] // 2
    f, r = slice(0, dim), slice(dim, 2 * dim)
    fwd = selective_scan_ref(u[:, f], d[:, f], A[f], B[:, 0], C[:, 0], D[f], z[:, f], bias[f],
                             delta_softplus=True)
    bwd = selective_scan_ref(u[:, r].flip(-1), d[:, r].flip(-1), A[r], B[:, 1].flip(-1),
                             C[:, 1].flip(-1), D[r], z[:, r].flip(-1), bias[r],
                             delta_softplus=True).flip(-1)
    torch.testing.assert_close(out, (fwd + bwd) / 2, rtol=1e-5, atol=1e-5)


def test_backend_is_checked_and_none_takes_the_global_default(monkeypatch):
    inputs = make_inputs()
    with pytest.raises(ValueError, match=r"unknown scan backend 'cuda'; use one of "
                                         r"\('auto', 'triton', 'torch'\)"):
        selective_scan(**inputs, backend='cuda')
    # MMSSM_SCAN_BACKEND, read at import (test_kernels_triton sets it in a fresh process)
    monkeypatch.setattr(interface, 'DEFAULT_BACKEND', 'cuda')
    with pytest.raises(ValueError, match="MMSSM_SCAN_BACKEND='cuda' is not a scan backend"):
        selective_scan(**inputs)
    assert selective_scan(**inputs, backend='torch').shape == (2, 6, 37)  # the call's wins
    monkeypatch.setattr(interface, 'DEFAULT_BACKEND', 'torch')
    assert selective_scan(**inputs).shape == (2, 6, 37)


@pytest.mark.parametrize('change,message', [
    (dict(u=torch.zeros(2, 6, 37, dtype=torch.float64)), 'unsupported dtype'),
    (dict(A=torch.zeros(6, 4, dtype=torch.float16)), 'A must be float32'),
    (dict(delta=torch.zeros(2, 5, 37)), 'A must be'),
    (dict(B=torch.zeros(2, 4, 36)), 'B must be'),
    (dict(z=torch.zeros(2, 6, 30)), 'z must be'),
    (dict(D=torch.zeros(5)), 'D must be'),
])
def test_bad_arguments_raise_clear_errors(change, message):
    inputs = {k: None if v is None else v.detach() for k, v in make_inputs().items()}
    inputs.update(change)
    with pytest.raises((ValueError, TypeError), match=message):
        selective_scan(**inputs)


def test_bad_paths_raise_clear_errors():
    with pytest.raises(ValueError, match='unknown scan route'):
        ScanPaths(('forward', 'diagonal'))
    with pytest.raises(ValueError, match='hw='):
        ScanPaths(('col', ))
    for hw in ((3.0, 5), (3, ), 15, (True, 5)):
        with pytest.raises(ValueError, match=rf'^hw must be \(H, W\), two whole numbers, got '):
            ScanPaths(('col', ), hw=hw)
    assert ScanPaths.cross2d([3, 5]) == ScanPaths.cross2d((3, 5))  # a list is taken as a tuple
    assert ScanPaths(('col', ), hw=[3, 5]).hw == (3, 5)
    inputs = {k: None if v is None else v.detach() for k, v in make_inputs(K=4, L=12).items()}
    with pytest.raises(ValueError, match='grid hw=.* has 15 tokens'):
        selective_scan(**inputs, paths=ScanPaths.cross2d((3, 5)))


def test_torch_compile_traces_the_scan_in_one_graph():
    """fullgraph: a graph break anywhere in selective_scan (checks, routes, the custom ops and
    their autograd) fails; the compiled call gives eager's numbers."""
    torch._dynamo.reset()
    inputs = make_inputs(K=2, G=2, L=19)
    compiled = torch.compile(selective_scan, fullgraph=True, backend='aot_eager')
    kw = dict(paths=ScanPaths.bidirectional(), backend='torch')
    assert_close_all(run(compiled, inputs, **kw), run(selective_scan, inputs, **kw),
                     rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize('batch,L', [(0, 19), (2, 0)])
def test_empty_batch_or_sequence(batch, L):
    inputs = make_inputs(batch=batch, K=2, G=2, L=L)
    out, last, grads = run(selective_scan, inputs, paths=ScanPaths.bidirectional(),
                           backend='torch')
    assert out.shape == (batch, 6, L) and torch.equal(last, torch.zeros(batch, 12, 4))
    leaves = [v for v in inputs.values() if v is not None]
    assert [g.shape for g in grads] == [v.shape for v in leaves]
    assert all(not g.any() for g in grads)
