"""Autograd functions that keep little for the backward and recompute the rest, as mamba_ssm's
``MambaInnerFn`` and fused add + norm do.

* :class:`MixerInnerFn`: a mixer's ``front(pre)`` (its convolution and SiLU) -> x_proj -> dt_proj
  -> selective scan, keeping only ``pre`` (the input projection's output), the gate ``z`` (a view
  of the same projection in the families that gate) and the scan's chunk-end states; the
  backward recomputes front, x_proj and dt_proj and runs the scan's backward from those states.
* :func:`add_rms_norm`: residual + x -> RMSNorm (-> a projection), keeping only the (fp32)
  residual and 1/rms.
* :func:`into_linear`: ``linear(fn(*inputs))`` keeping only the inputs (an activation, a norm or
  a concatenation before a projection: the projection's input is recomputed, not kept).

Each saves through ``ctx.save_for_backward``, so ``saved_tensors_hooks`` (the benchmark's
saved-activation meter) see everything that is kept.
"""
import torch
import torch.nn.functional as F

from mmssm_kernels.interface import selective_scan_bwd, selective_scan_fwd


def _autocast_state(device_type):
    return (device_type, torch.get_autocast_dtype(device_type),
            torch.is_autocast_enabled(device_type))


class MixerInnerFn(torch.autograd.Function):
    """``ssm.front(pre, *front_args)`` -> ``ssm.project`` -> one selective scan over ``paths``.

    ``params`` are the tensors the recomputation reads that need gradients (the SSM's
    parameters); they are inputs so that their gradients reach them through autograd like any
    other's (``torch.autograd.grad`` in the backward, nothing accumulated behind its back)."""

    @staticmethod
    def forward(ctx, ssm, paths, out_dtype, front_args, pre, z, *params):
        u = ssm.front(pre, *front_args)
        delta, B, C = ssm.project(u)
        A, D, bias = ssm.scan_parameters()
        out, states, record = selective_scan_fwd(u, delta, A, B, C, D, z, bias, True, paths,
                                                 out_dtype, ssm.scan_backend)
        ctx.save_for_backward(pre, z, states)
        ctx.ssm, ctx.front_args, ctx.record, ctx.params = ssm, front_args, record, params
        ctx.autocast = _autocast_state(pre.device.type)
        return out

    @staticmethod
    def backward(ctx, dout):
        pre, z, states = ctx.saved_tensors
        ssm = ctx.ssm
        device_type, dtype, enabled = ctx.autocast
        # the same autocast as the forward, so the recomputed u, delta, B, C are the forward's
        with torch.enable_grad(), torch.autocast(device_type, dtype, enabled=enabled):
            pre = pre.detach().requires_grad_(ctx.needs_input_grad[4])
            u = ssm.front(pre, *ctx.front_args)
            delta, B, C = ssm.project(u)
            A, D, bias = ssm.scan_parameters()
        recomputed = (u, delta, A, B, C, D, bias)
        du, ddelta, dA, dB, dC, dD, dz, dbias = selective_scan_bwd(
            ctx.record, *(t.detach() for t in recomputed[:6]), z, bias.detach(), states, dout)
        pairs = [(t, g) for t, g in zip(recomputed, (du, ddelta, dA, dB, dC, dD, dbias))
                 if t.requires_grad]
        wanted = [t for t in (pre, *ctx.params) if t.requires_grad]
        grads = iter(torch.autograd.grad([t for t, _ in pairs], wanted, [g for _, g in pairs],
                                         allow_unused=True) if pairs and wanted else ())
        dpre = next(grads) if pre.requires_grad else None
        dparams = [next(grads) if p.requires_grad else None for p in ctx.params]
        return (None, None, None, None, dpre, dz if ctx.needs_input_grad[5] else None, *dparams)


class IntoLinear(torch.autograd.Function):

    @staticmethod
    def forward(ctx, fn, linear, n_inputs, *args):
        inputs, ctx.params = args[:n_inputs], args[n_inputs:]
        ctx.fn, ctx.linear = fn, linear
        ctx.save_for_backward(*inputs)
        ctx.autocast = _autocast_state(inputs[0].device.type)
        return linear(fn(*inputs))

    @staticmethod
    def backward(ctx, dout):
        device_type, dtype, enabled = ctx.autocast
        with torch.enable_grad(), torch.autocast(device_type, dtype, enabled=enabled):
            inputs = [t.detach().requires_grad_(need)
                      for t, need in zip(ctx.saved_tensors, ctx.needs_input_grad[3:])]
            g = ctx.fn(*inputs)
        # the linear's backward by hand, in the precision its forward ran in (autocast casts g
        # and the weight to ``dtype``): its forward is not run again
        weight, bias = ctx.linear.weight, ctx.linear.bias
        cdtype = dtype if enabled else g.dtype
        gc, dout = g.detach().to(cdtype), dout.to(cdtype)
        dweight = dout.flatten(0, -2).t() @ gc.flatten(0, -2) if weight.requires_grad else None
        dbias = dout.flatten(0, -2).sum(0) if bias is not None and bias.requires_grad else None
        dg = (dout @ weight.to(cdtype)).to(g.dtype)
        own = [p for p in ctx.params if p is not weight and p is not bias]
        wanted = [t for t in (*inputs, *own) if t.requires_grad]
        grads = iter(torch.autograd.grad(g, wanted, dg, allow_unused=True) if wanted else ())
        dinputs = [next(grads) if t.requires_grad else None for t in inputs]
        dparams = []
        for p in ctx.params:
            if p is weight:
                dparams.append(dweight.to(p.dtype))
            elif p is bias:
                dparams.append(dbias.to(p.dtype))
            else:
                dparams.append(next(grads) if p.requires_grad else None)
        return (None, None, None, *dinputs, *dparams)


def into_linear(fn, linear, *inputs, params=()):
    """``linear(fn(*inputs))`` keeping only ``inputs`` for the backward, which recomputes ``fn``
    (an activation, a norm, a concatenation: cheap, deterministic, in the forward's autocast
    state) but not the linear. ``params``: the parameters ``fn`` reads."""
    params = [p for p in (*params, *linear.parameters()) if p.requires_grad]
    # a jit trace (FLOP counting) records the plain ops: it cannot take a function argument
    if (not torch.is_grad_enabled() or torch.jit.is_tracing()
            or not (params or any(t.requires_grad for t in inputs))):
        return linear(fn(*inputs))
    return IntoLinear.apply(fn, linear, len(inputs), *inputs, *params)


class AddRMSNorm(torch.autograd.Function):

    @staticmethod
    def forward(ctx, x, residual, weight, eps, residual_dtype, out_dtype, proj_weight, row_align):
        if residual is None:
            residual = x.to(residual_dtype, copy=True)
        else:
            residual = (residual + x).to(residual_dtype)
        r = residual.float()
        rstd = torch.rsqrt(r.square().mean(-1, keepdim=True) + eps)
        out = (r * rstd * weight.float()).to(out_dtype)
        ctx.save_for_backward(residual, weight, rstd, proj_weight)
        ctx.x_dtype, ctx.out_dtype, ctx.row_align = x.dtype, out_dtype, row_align
        if proj_weight is not None:
            out = proj_weight.to(out_dtype) @ _rows(out, row_align).transpose(1, 2)
        return out, residual

    @staticmethod
    def backward(ctx, dout, dresidual):
        residual, weight, rstd, proj_weight = ctx.saved_tensors
        xhat = residual.float() * rstd
        dproj = None
        if proj_weight is not None:
            # the projection's backward by hand, on its input recomputed as the forward made it
            # (the same ops on the same residual: bitwise equal) in the forward's precision
            xin = _rows((xhat * weight.float()).to(ctx.out_dtype), ctx.row_align)
            w, dout = proj_weight.to(ctx.out_dtype), dout.to(ctx.out_dtype)
            if ctx.needs_input_grad[6]:
                dproj = (dout @ xin).sum(0).to(proj_weight.dtype)
            dout = (dout.transpose(1, 2) @ w)[:, :residual.shape[1]]
            del xin
        dout = dout.float()
        dweight = (dout * xhat).flatten(0, -2).sum(0).to(weight.dtype)
        g = dout * weight.float()
        dr = rstd * (g - xhat * (g * xhat).mean(-1, keepdim=True))
        if dresidual is not None:
            dr = dr + dresidual.float()
        return (dr.to(ctx.x_dtype), dr.to(residual.dtype) if ctx.needs_input_grad[1] else None,
                dweight, None, None, None, dproj, None)


def _rows(x, align):
    """x (batch, L, d) with zero tokens after it up to a multiple of ``align``."""
    return F.pad(x, (0, 0, 0, -x.shape[1] % align)) if x.shape[1] % align else x


def add_rms_norm(x, residual, weight, eps, residual_in_fp32=True, proj_weight=None,
                 row_align=1):
    """(RMSNorm(residual + x) * weight, residual + x), the residual in fp32 with
    ``residual_in_fp32``; the normalised output in autocast's dtype where autocast is on (the
    next projection's input) and in the residual's otherwise. Only the residual and 1/rms are
    kept for the backward, not the normalised input.

    With ``proj_weight`` (out, d), the first output is that projection of the normalised input
    instead, ``proj_weight @ normalised.T`` in rows of tokens padded with zeros to a multiple of
    ``row_align``: (batch, out, L padded). The projection's input is then not kept either: the
    backward recomputes it from the residual."""
    residual_dtype = torch.float32 if residual_in_fp32 else (
        x.dtype if residual is None else residual.dtype)
    device_type = x.device.type
    out_dtype = (torch.get_autocast_dtype(device_type) if torch.is_autocast_enabled(device_type)
                 else residual_dtype)
    if proj_weight is not None and (not torch.is_grad_enabled() or torch.jit.is_tracing()):
        # nothing to keep; a jit trace (FLOP counting) records the projection as a plain op
        out, residual = AddRMSNorm.apply(x, residual, weight, eps, residual_dtype, out_dtype,
                                         None, 1)
        return proj_weight @ _rows(out, row_align).transpose(1, 2), residual
    return AddRMSNorm.apply(x, residual, weight, eps, residual_dtype, out_dtype, proj_weight,
                            row_align)
