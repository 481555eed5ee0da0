"""The fused functions give the unfused computation's outputs and gradients: the fused mixer
(:class:`MixerInnerFn`, every family's mixer) against autograd through front, x_proj, dt_proj and
the token-by-token oracle scan; add + RMSNorm against timm's RmsNorm."""
import pytest
import torch
import torch.nn.functional as F
from timm.layers import RmsNorm
from timm.layers.attention import Attention

from mmssm.models.backbones.mambavision import FORWARD, MambaVisionMixer, WindowAttention
from mmssm.models.backbones.vim import BIDIRECTIONAL, BiMambaMixer
from mmssm.models.backbones.vmamba import SS2D
from mmssm.models.layers import PreNormBlock
from mmssm.models.layers.fused import add_rms_norm
from mmssm_kernels import ScanPaths, selective_scan, selective_scan_ref, torch_scan


def vim():
    xz = torch.randn(2, 2 * 16, 23, requires_grad=True)
    pre, z = xz.chunk(2, dim=1)
    return BiMambaMixer(8, d_state=4), xz, pre, z, BIDIRECTIONAL, None, ()


def vmamba():
    pre = torch.randn(2, 15, 8, requires_grad=True)  # (batch, H*W, d), channel-last
    return SS2D(8, d_state=2), pre, pre, None, ScanPaths.cross2d((3, 5)), torch.float32, ((3, 5), )


def mambavision():
    pre = torch.randn(3, 8, 20, requires_grad=True)
    return MambaVisionMixer(16), pre, pre, None, FORWARD, None, ()


FAMILIES = {'vim': vim, 'vmamba': vmamba, 'mambavision': mambavision}


def unfused(mixer, pre, paths, z, out_dtype, front_args, scan):
    """mix() written out, autograd through every op."""
    u = mixer.front(pre, *front_args)
    delta, B, C = mixer.project(u)
    A, D, bias = mixer.scan_parameters()
    kw = dict(backend='torch') if scan is selective_scan else {}
    return scan(u, delta, A, B, C, D, z, bias, delta_softplus=True, paths=paths,
                out_dtype=out_dtype, **kw)


def outputs_and_grads(fn, leaf, mixer):
    out = fn()
    weights = torch.cos(torch.arange(out.numel(), dtype=torch.float32)).view_as(out)
    params = [p for p in mixer.parameters()]
    grads = torch.autograd.grad((out.float() * weights).sum(), [leaf, *params],
                                allow_unused=True)
    return out, grads


@pytest.mark.parametrize('backend', ['torch', 'triton'])
@pytest.mark.parametrize('family', list(FAMILIES))
def test_fused_mixer_equals_unfused_oracle(family, backend):
    """On both scan paths (Triton in its interpreter on the CPU): the Triton kernels keep no
    states, the PyTorch path its chunk-end states."""
    torch.manual_seed(0)
    mixer, leaf, pre, z, paths, out_dtype, front_args = FAMILIES[family]()
    mixer.scan_backend = backend
    fused = outputs_and_grads(lambda: mixer.mix(pre, paths, z, out_dtype, front_args), leaf,
                              mixer)
    ref = outputs_and_grads(
        lambda: unfused(mixer, pre, paths, z, out_dtype, front_args, selective_scan_ref), leaf,
        mixer)
    torch.testing.assert_close(fused[0], ref[0], rtol=1e-5, atol=1e-6)
    names = ['input'] + [n for n, _ in mixer.named_parameters()]
    for name, g, r in zip(names, fused[1], ref[1]):
        # in_proj / out_proj are the mixer's own business: no gradient from mix() in either
        assert (g is None) == (r is None), name
        if g is not None:
            torch.testing.assert_close(g, r, rtol=1e-4, atol=1e-5, msg=name)


@pytest.mark.parametrize('family', list(FAMILIES))
def test_fused_mixer_under_bf16_autocast_recomputes_the_forward(family):
    """Under autocast the backward recomputes in the forward's precision: the output is the
    unfused one bit for bit, the gradients those of autograd through the same bf16 ops and the
    same scan up to bf16 rounding (sums met in another order)."""
    torch.manual_seed(0)
    mixer, leaf, pre, z, paths, out_dtype, front_args = FAMILIES[family]()
    with torch.autocast('cpu', torch.bfloat16):
        fused = outputs_and_grads(lambda: mixer.mix(pre, paths, z, out_dtype, front_args),
                                  leaf, mixer)
        ref = outputs_and_grads(
            lambda: unfused(mixer, pre, paths, z, out_dtype, front_args, selective_scan), leaf,
            mixer)
    assert fused[0].dtype == ref[0].dtype
    torch.testing.assert_close(fused[0], ref[0], rtol=0, atol=0)
    for g, r in zip(fused[1], ref[1]):
        if g is not None:
            torch.testing.assert_close(g.float(), r.float(), rtol=1.6e-2, atol=2e-3)


def test_fused_mixer_keeps_only_its_input_and_the_scan_states():
    torch.manual_seed(0)
    mixer, leaf, pre, z, paths, out_dtype, front_args = vim()
    saved = []

    def pack(t):
        if not isinstance(t, torch.nn.Parameter):
            saved.append(t)
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        mixer.mix(pre, paths, z)
    storages = {t.untyped_storage().data_ptr() for t in saved}
    # pre and z are views of xz; one chunk of 23 tokens: no chunk-end state
    assert storages == {leaf.untyped_storage().data_ptr(), saved[-1].untyped_storage().data_ptr()}
    assert saved[-1].dtype == torch.float32 and saved[-1].shape == (2, 32, 0, 4)


@pytest.mark.parametrize('L', [2, 37])
def test_streamed_vim_mixer_equals_the_whole_sequence_oracle(L, monkeypatch):
    """Without gradients Vim's mixer makes the scan's inputs a block of tokens at a time
    (in_proj, conv with its halo of d_conv - 1 tokens, SiLU, x_proj, dt_proj): blocks of 8 steps
    here, so the halos cross block edges in both directions."""
    monkeypatch.setattr(torch_scan, 'BLOCK', 1)
    monkeypatch.setattr(torch_scan, 'WORKSET', 1)
    torch.manual_seed(0)
    mixer = BiMambaMixer(8, d_state=4)
    x = torch.randn(2, L, 8)
    with torch.no_grad():
        assert mixer.streams(x)
        out = mixer(x)
        pre, z = mixer.in_proj(x).transpose(1, 2).chunk(2, dim=1)
        y = unfused(mixer, pre, BIDIRECTIONAL, z, None, (), selective_scan_ref)
        torch.testing.assert_close(out, mixer.out_proj(y.transpose(1, 2)), rtol=1e-5, atol=1e-6)
        with torch.autocast('cpu', torch.bfloat16):
            out = mixer(x)
    with torch.autocast('cpu', torch.bfloat16):
        ref = mixer(x)  # the fused mixer over the whole sequence
    assert out.dtype == ref.dtype == torch.bfloat16
    torch.testing.assert_close(out, ref, rtol=1.6e-2, atol=1e-3)


@pytest.mark.parametrize('first', [True, False])
def test_add_rms_norm_equals_add_then_timm_rmsnorm(first):
    torch.manual_seed(0)
    norm = RmsNorm(12, eps=1e-5)
    with torch.no_grad():
        norm.weight.uniform_(0.5, 1.5)
    x = torch.randn(2, 7, 12, requires_grad=True)
    residual = None if first else torch.randn(2, 7, 12, requires_grad=True)
    leaves = [t for t in (x, residual, norm.weight) if t is not None]
    weights = torch.randn(2, 7, 12)

    def grads(out, res):
        return torch.autograd.grad((out * weights).sum() + (res * weights.cos()).sum(), leaves)

    out, res = add_rms_norm(x, residual, norm.weight, norm.eps)
    ref_res = x if first else residual + x
    ref = norm(ref_res)
    torch.testing.assert_close(res, ref_res)
    torch.testing.assert_close(out, ref, rtol=1e-6, atol=1e-6)
    for g, r in zip(grads(out, res), grads(ref, ref_res)):
        torch.testing.assert_close(g, r, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize('amp', [False, True])
def test_add_rms_norm_into_projection_recomputes_its_input(amp):
    """With a projection (Vim's in_proj, rows padded to 16 tokens) the output and gradients are
    add -> timm's RmsNorm -> projection's, and what is kept is the residual and 1/rms (and the
    weights), not the projection's input."""
    torch.manual_seed(0)
    norm = RmsNorm(12, eps=1e-5)
    with torch.no_grad():
        norm.weight.uniform_(0.5, 1.5)
    proj = torch.randn(10, 12, requires_grad=True)
    x, residual = (torch.randn(2, 7, 12, requires_grad=True) for _ in range(2))
    leaves = [x, residual, norm.weight, proj]
    weights = torch.randn(2, 10, 16)
    saved = []

    def pack(t):
        if not isinstance(t, torch.nn.Parameter) and t is not proj:
            saved.append(t)
        return t

    def grads(out, res):
        loss = (out.float() * weights).sum() + (res * weights[:, :7, :12].cos()).sum()
        return torch.autograd.grad(loss, leaves)

    with torch.autocast('cpu', torch.bfloat16, enabled=amp):
        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            out, res = add_rms_norm(x, residual, norm.weight, norm.eps, proj_weight=proj,
                                    row_align=16)
        ref_res = residual + x
        ref = proj @ F.pad(norm(ref_res).to(out.dtype), (0, 0, 0, 9)).transpose(1, 2)
    assert [tuple(t.shape) for t in saved] == [(2, 7, 12), (2, 7, 1)]
    assert out.shape == (2, 10, 16) and out.dtype == (torch.bfloat16 if amp else torch.float32)
    tol = dict(rtol=1.6e-2, atol=1e-2) if amp else dict(rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(out, ref, **tol)
    for g, r in zip(grads(out, res), grads(ref, ref_res)):
        torch.testing.assert_close(g, r, **tol)


@pytest.mark.parametrize('op', ['mamba', 'attention'])
def test_prenorm_block_recomputing_its_norms_equals_the_plain_block(op):
    """MambaVision's blocks: the norms' outputs (in_proj's / qkv's and fc1's inputs) and the
    attention's merged heads (proj's input) are recomputed in the backward, not kept; outputs and
    gradients are the plain block's."""
    torch.manual_seed(0)
    dim = 16
    mixer = MambaVisionMixer(dim) if op == 'mamba' else WindowAttention(dim, 2, qkv_bias=True)
    block = PreNormBlock(dim, mixer, mlp_ratio=2.)
    x = torch.randn(3, 10, dim, requires_grad=True)
    leaves = [x, *block.parameters()]

    def plain():
        h = block.norm(x)
        y = mixer(h) if op == 'mamba' else Attention.forward(mixer, h)
        x1 = x + y
        return x1 + block.mlp.fc2(block.mlp.act(block.mlp.fc1(block.norm2(x1))))

    weights = torch.randn(3, 10, dim)
    out, ref = block(x, None), plain()
    torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-6)
    grads = torch.autograd.grad((out * weights).sum(), leaves, allow_unused=True)
    ref_grads = torch.autograd.grad((ref * weights).sum(), leaves, allow_unused=True)
    for g, r in zip(grads, ref_grads):
        if r is not None:
            torch.testing.assert_close(g, r, rtol=1e-5, atol=1e-6)
