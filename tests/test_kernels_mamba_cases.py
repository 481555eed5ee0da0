"""mamba_ssm's own scan test (tests/ops/test_selective_scan.py, `test_selective_scan`) run
against our scan on both backends: its active parametrisation as it stands (fp32, all options on,
lengths 128..4096, B/C in 1 or 2 groups), and the values it leaves commented out (half inputs, odd
and short lengths, each option off) against the oracle evaluated in fp32. Its inputs, sizes
(batch 2, 4 channels, 8 states) and tolerances are mamba's. Not reproduced: B/C constant over
time and complex weights, which this scan does not take.

The Triton interpreter runs the cases of 8 to 128 tokens (the shortest active length, each
commented-out dtype and option) to stay within a couple of minutes on the CPU (it runs the row
kernels one loop iteration per 4 to 8 tokens); on a GPU it runs them all. The oracle's results are computed once per case for both."""
import functools

import pytest
import torch

from mmssm_kernels import selective_scan, selective_scan_ref

DEVICE = 'cuda' if torch.cuda.is_available() else 'cpu'
FLAGS = ('has_D', 'has_z', 'has_delta_bias', 'delta_softplus', 'return_last_state')
ALL_ON = dict.fromkeys(FLAGS, True)

# (itype, seqlen, groups, flags)
ACTIVE = [(torch.float32, L, g, ALL_ON) for L in (128, 256, 512, 1024, 2048, 4096) for g in (1, 2)]
COMMENTED_OUT = (
    [(itype, L, 1, ALL_ON) for itype in (torch.float16, torch.bfloat16) for L in (8, 372, 1134)]
    + [(torch.float32, L, 2, ALL_ON) for L in (8, 16, 32, 64, 372, 784, 1134)]
    + [(torch.float32, 64, 1, dict(ALL_ON, **{flag: False})) for flag in FLAGS])
INTERPRETER = [c for c in ACTIVE + COMMENTED_OUT if c[1] in (8, 64, 128)]


def case_id(case):
    itype, L, g, flags = case
    off = [f for f in FLAGS if not flags[f]]
    return f'{str(itype)[6:]}-L{L}-g{g}' + ''.join(f'-no_{f}' for f in off)


def mamba_inputs(itype, seqlen, groups, has_D, has_z, has_delta_bias):
    """mamba's draws, in its order and scales."""
    torch.random.manual_seed(0)
    batch, dim, dstate = 2, 4, 8
    bc = (batch, dstate, seqlen) if groups == 1 else (batch, groups, dstate, seqlen)
    A = -0.5 * torch.rand(dim, dstate)
    B = torch.randn(*bc).to(itype)
    C = torch.randn(*bc).to(itype)
    D = torch.randn(dim) if has_D else None
    z = torch.randn(batch, dim, seqlen).to(itype) if has_z else None
    delta_bias = 0.5 * torch.rand(dim) if has_delta_bias else None
    u = torch.randn(batch, dim, seqlen).to(itype)
    delta = (0.5 * torch.rand(batch, dim, seqlen)).to(itype)
    return dict(u=u, delta=delta, A=A, B=B, C=C, D=D, z=z, delta_bias=delta_bias)


def tolerances(itype, has_z):
    rtol, atol = {torch.float32: (6e-4, 2e-3), torch.float16: (3e-3, 5e-3),
                  torch.bfloat16: (3e-2, 5e-2)}[itype]
    rtolw, atolw = 1e-3, 1e-3
    if has_z:  # mamba: with z the weights' errors are larger
        rtolw, atolw = max(rtolw, rtol), max(atolw, atol)
    return rtol, atol, rtolw, atolw


def upstream_grad(shape):
    return torch.randn(shape, generator=torch.Generator().manual_seed(1)).to(DEVICE)


@functools.lru_cache(maxsize=None)
def oracle(itype, seqlen, groups, flags):
    """Output, last state and gradients of the oracle in fp32, shared by both backends (its
    token loop is the slow part of these tests)."""
    flags = dict(flags)
    inputs = mamba_inputs(itype, seqlen, groups, flags['has_D'], flags['has_z'],
                          flags['has_delta_bias'])
    ref = {k: None if v is None else v.to(DEVICE).float().requires_grad_()
           for k, v in inputs.items()}
    out, state = selective_scan_ref(**ref, delta_softplus=flags['delta_softplus'],
                                    return_last_state=True)
    # the output gradient as the half-precision scan receives it (mamba: randn_like(out))
    out.backward(upstream_grad(out.shape).to(itype).float())
    return out.detach(), state, {k: v.grad for k, v in ref.items() if v is not None}


def check(backend, itype, seqlen, groups, flags):
    inputs = mamba_inputs(itype, seqlen, groups, flags['has_D'], flags['has_z'],
                          flags['has_delta_bias'])
    ours = {k: None if v is None else v.to(DEVICE).requires_grad_() for k, v in inputs.items()}
    kw = dict(delta_softplus=flags['delta_softplus'],
              return_last_state=flags['return_last_state'])
    got = selective_scan(**ours, backend=backend, **kw)
    out, *state = got if kw['return_last_state'] else (got, )
    out_ref, state_ref, ref_grads = oracle(itype, seqlen, groups, tuple(sorted(flags.items())))
    rtol, atol, rtolw, atolw = tolerances(itype, flags['has_z'])
    assert out.dtype == itype
    torch.testing.assert_close(out.float(), out_ref, rtol=rtol, atol=atol)
    if state:
        torch.testing.assert_close(state[0], state_ref, rtol=rtol, atol=atol)
    out.backward(upstream_grad(out.shape).to(itype))
    bounds = dict(u=(rtol * 2, atol * 2), delta=(rtol * 5, atol * 10), A=(rtolw, atolw * 5),
                  B=(rtol, atol), C=(rtol, atol), D=(rtolw, atolw), z=(rtolw, atolw),
                  delta_bias=(rtolw, atolw))
    for name, (r, a) in bounds.items():
        if ours[name] is not None:
            assert ours[name].grad.dtype == ours[name].dtype, name
            torch.testing.assert_close(ours[name].grad.float(), ref_grads[name], rtol=r,
                                       atol=a, msg=lambda m: f'd{name}: {m}')


@pytest.mark.parametrize('case', ACTIVE + COMMENTED_OUT, ids=case_id)
def test_mamba_cases_torch(case):
    check('torch', *case)


@pytest.mark.parametrize('case', ACTIVE + COMMENTED_OUT if DEVICE == 'cuda' else INTERPRETER,
                         ids=case_id)
def test_mamba_cases_triton(case):
    check('triton', *case)
