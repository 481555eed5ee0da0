"""The selective scan in an exported ONNX file: standard operators only, every route the backbones
use, dynamic batch and length, against the oracle in ONNX Runtime."""
import numpy as np
import pytest
import torch

from mmssm_kernels import ScanPaths, selective_scan
from mmssm_kernels.reference import selective_scan_ref

onnx = pytest.importorskip('onnx', reason='deployment needs onnx (requirements.txt)')
ort = pytest.importorskip('onnxruntime', reason='deployment needs onnxruntime (requirements.txt)')

# (routes, merge, u shared by the routes, B/C groups)
ROUTES = {
    'forward': (('forward', ), None, False, 1),
    'reverse': (('reverse', ), None, False, 1),
    'bidirectional-mean': (('forward', 'reverse'), 'mean', False, 1),
    'cross2d-sum': (('forward', 'col', 'reverse', 'col_reverse'), 'sum', True, 4),
}


class Scan(torch.nn.Module):
    """One selective_scan call; ``grid`` only carries (H, W) as a shape, so they are dynamic."""

    def __init__(self, routes, merge):
        super().__init__()
        self.routes, self.merge = routes, merge

    def forward(self, u, delta, A, B, C, D, z, bias, grid):
        hw = tuple(grid.shape) if any(r.startswith('col') for r in self.routes) else None
        return selective_scan(u, delta, A, B, C, D, z, bias, delta_softplus=True,
                              paths=ScanPaths(self.routes, hw=hw, merge=self.merge))


class EveryRoute(torch.nn.Module):
    """One file for every route (one export is most of the test's time)."""

    def __init__(self):
        super().__init__()
        self.scans = torch.nn.ModuleList(Scan(r[0], r[1]) for r in ROUTES.values())

    def forward(self, *inputs):
        return tuple(scan(*inputs[9 * i:9 * i + 9]) for i, scan in enumerate(self.scans))


def scan_inputs(routes, shared, groups, H, W, batch, dim=6, N=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    K, L = len(routes), H * W
    channels = dim if shared else K * dim
    r = lambda *s: torch.randn(*s, generator=g)  # noqa: E731
    return (r(batch, channels, L), r(batch, K * dim, L) * 0.5,
            -torch.rand(K * dim, N, generator=g) * 4, r(batch, groups, N, L),
            r(batch, groups, N, L), r(K * dim), r(batch, channels, L), r(K * dim) * 0.1,
            torch.zeros(H, W))


def every_route_inputs(H, W, batch, seed=0):
    return [t for name, (routes, _, shared, groups) in ROUTES.items()
            for t in scan_inputs(routes, shared, groups, H, W, batch, seed=seed)]


def test_exported_scan_matches_the_oracle_on_every_route_at_other_sizes(tmp_path):
    dyn = torch.export.Dim.DYNAMIC
    dims = ({0: dyn, 2: dyn}, {0: dyn, 2: dyn}, None, {0: dyn, 3: dyn}, {0: dyn, 3: dyn}, None,
            {0: dyn, 2: dyn}, None, {0: dyn, 1: dyn}) * len(ROUTES)
    path = str(tmp_path / 'scan.onnx')
    torch.onnx.export(EveryRoute().eval(), tuple(every_route_inputs(4, 5, batch=2)), path,
                      dynamo=True, dynamic_shapes=(dims, ), verbose=False)
    model = onnx.load(path)
    ops = [n.op_type for n in model.graph.node]
    # one Scan per route set, and nothing outside the standard domain
    assert ops.count('Scan') == len(ROUTES), ops
    assert all(n.domain in ('', 'ai.onnx') for n in model.graph.node)
    session = ort.InferenceSession(path, providers=['CPUExecutionProvider'])
    for H, W, batch in ((4, 5, 2), (7, 3, 3), (1, 9, 1)):
        inputs = every_route_inputs(H, W, batch, seed=H)
        feeds = {i.name: t.numpy() for i, t in zip(session.get_inputs(), inputs)}
        outputs = session.run(None, feeds)
        for i, (routes, merge, _, _) in enumerate(ROUTES.values()):
            hw = (H, W) if any(r.startswith('col') for r in routes) else None
            expected = selective_scan_ref(*inputs[9 * i:9 * i + 8], delta_softplus=True,
                                          paths=ScanPaths(routes, hw=hw, merge=merge))
            assert outputs[i].shape == tuple(expected.shape)
            np.testing.assert_allclose(outputs[i], expected.numpy(), atol=1e-4, rtol=0,
                                       err_msg=f'{routes} at {H}x{W}, batch {batch}')


def test_eager_calls_do_not_take_the_export_path(monkeypatch):
    """Outside an export the scan keeps its backends (the export core has no backward)."""
    from mmssm_kernels import export_scan
    monkeypatch.setattr(export_scan, 'scan_core_export', None)  # would fail if called
    routes, merge, shared, groups = ROUTES['bidirectional-mean']
    inputs = scan_inputs(routes, shared, groups, 2, 3, batch=1)
    out = Scan(routes, merge)(*inputs)
    expected = selective_scan_ref(*inputs[:8], delta_softplus=True,
                                  paths=ScanPaths(routes, merge=merge))
    torch.testing.assert_close(out, expected, atol=1e-5, rtol=1e-5)
