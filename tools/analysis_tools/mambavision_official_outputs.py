"""Writes tests/fixtures/mambavision_official.pt: stage outputs of NVIDIA's own MambaVision dense
backbone (``MM_mamba_vision`` in NVlabs/MambaVision semantic_segmentation/tools/mamba_vision.py),
run unmodified on the CPU, for the cases and weights of tests/test_mambavision_official.py.

The official file imports mamba_ssm's CUDA ``selective_scan_fn``; a token-by-token port of
mamba_ssm's ``selective_scan_ref`` stands in for it here. It also needs einops, timm and
mmseg/mmdet (for its registries).

    python tools/analysis_tools/mambavision_official_outputs.py PATH/TO/MambaVision \\
        tests/fixtures/mambavision_official.pt
"""
import argparse
import importlib.util
import sys
import types
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / 'tests'))
from test_mambavision_official import CASES, inputs, official_weights, sample  # noqa: E402


def selective_scan_ref(u, delta, A, B, C, D=None, z=None, delta_bias=None, delta_softplus=False,
                       return_last_state=False):
    """mamba_ssm's reference semantics: fp32 states, one token at a time."""
    dtype = u.dtype
    u, delta = u.float(), delta.float()
    if delta_bias is not None:
        delta = delta + delta_bias[..., None].float()
    if delta_softplus:
        delta = F.softplus(delta)
    decay = torch.exp(torch.einsum('bdl,dn->bdln', delta, A))
    drive = torch.einsum('bdl,bnl,bdl->bdln', delta, B.float(), u)
    h = A.new_zeros(u.shape[0], u.shape[1], A.shape[1])
    ys = []
    for t in range(u.shape[2]):
        h = decay[:, :, t] * h + drive[:, :, t]
        ys.append(torch.einsum('bdn,bn->bd', h, C[:, :, t].float()))
    y = torch.stack(ys, dim=2)
    if D is not None:
        y = y + u * D[..., None]
    if z is not None:
        y = y * F.silu(z)
    return (y.to(dtype), h) if return_last_state else y.to(dtype)


def official_module(repo, selective_scan_fn=selective_scan_ref):
    """The release's dense MambaVision module, with ``selective_scan_fn`` for mamba_ssm's."""
    interface = types.ModuleType('mamba_ssm.ops.selective_scan_interface')
    interface.selective_scan_fn = selective_scan_fn
    for name in ('mamba_ssm', 'mamba_ssm.ops'):
        sys.modules.setdefault(name, types.ModuleType(name))
    sys.modules['mamba_ssm.ops.selective_scan_interface'] = interface
    path = Path(repo) / 'semantic_segmentation/tools/mamba_vision.py'
    spec = importlib.util.spec_from_file_location('official_mamba_vision', path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('repo', help='a checkout of NVlabs/MambaVision')
    parser.add_argument('out', help='fixture file to write')
    args = parser.parse_args(argv)
    official = official_module(args.repo)
    fixture = {}
    for name, case in CASES.items():
        model = official.MM_mamba_vision(**case['official']).eval()
        layout = [(k, tuple(v.shape)) for k, v in model.state_dict().items()]
        model.load_state_dict(official_weights(layout, case['seed'], case['file'] == 'release'))
        outputs = {}
        for hw in case['sizes']:
            with torch.no_grad():
                outputs[hw] = [sample(o, i) for i, o in enumerate(model(inputs(hw)))]
        fixture[name] = dict(layout=layout, outputs=outputs)
    torch.save(fixture, args.out)
    print(f'{args.out}: {", ".join(fixture)}')


if __name__ == '__main__':
    main()
