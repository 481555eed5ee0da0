"""A training step of a small backbone of each family, captured in a CUDA graph and replayed,
matches the same step run eagerly: the scan's host path neither synchronises with the GPU nor
allocates by value, so the whole step (Triton scan forward and backward included) can be
captured. Needs a CUDA GPU."""
import pytest
import torch
from mmseg.registry import MODELS

import mmssm  # noqa: F401  (registers)

SMALL = {
    'vim': dict(type='VisionMamba', arch=dict(embed_dims=16, depth=2, d_state=4), img_size=32),
    'vmamba': dict(type='VMamba', arch=dict(embed_dims=8, depths=(1, 1, 1, 1))),
    'mambavision': dict(type='MambaVision', arch=dict(embed_dims=8, stem_channels=8,
                        depths=(1, 1, 2, 2), num_heads=(1, 1, 2, 4)), window_size=(8, 8, 4, 2)),
}


@pytest.mark.skipif(not torch.cuda.is_available(),
                    reason='capturing a CUDA graph needs a CUDA GPU; this machine has none')
@pytest.mark.parametrize('family', list(SMALL))
def test_training_step_replays_from_a_cuda_graph(family):
    torch.manual_seed(0)
    model = MODELS.build(SMALL[family]).cuda()
    model.init_weights()
    x = torch.randn(2, 3, 32, 32, device='cuda')
    opt = torch.optim.SGD(model.parameters(), lr=0.1)

    def step():
        opt.zero_grad(set_to_none=False)
        loss = sum(o.float().square().mean() for o in model(x))
        loss.backward()
        opt.step()
        return loss

    # warm up on a side stream (compiles the kernels, fills the plan caches), as torch asks
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        for _ in range(2):
            step()
    torch.cuda.current_stream().wait_stream(side)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        captured_loss = step()
    graph.replay()
    torch.cuda.synchronize()
    replayed = {k: v.clone() for k, v in model.state_dict().items()}
    replayed_loss = captured_loss.item()
    model.load_state_dict(before)
    eager_loss = step().item()
    assert replayed_loss == pytest.approx(eager_loss, rel=1e-4)
    changed = 0
    for name, value in model.state_dict().items():
        torch.testing.assert_close(replayed[name], value, rtol=1e-4, atol=1e-5, msg=name)
        changed += not torch.equal(value, before[name])
    assert changed > 0
