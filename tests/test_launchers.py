"""The cluster launchers, run as on a cluster, on the CPU (gloo) with Vim's demo config for 2
iterations: tools/slurm_train.sh then tools/slurm_test.sh on a real one-node Slurm of this machine
(tools/ci/local_slurm.sh), tools/dist_train.sh as two nodes of one process each, and a node killed
during a two-node run. Two ranks fed the same batches train bit-identical weights however they
were launched: each run is compared tensor by tensor with a one-node, two-process run, which a
single process then resumes."""
import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from conftest import SUMMARY
from test_tools_e2e import IN_PROCESS_DATA, REPO, SEG_CONFIG, free_port, metric, run

from mmssm.apis import distributed
from mmssm.datasets.synthetic import make

pytestmark = pytest.mark.slow

ITERS = 2
# one thread per process everywhere: torchrun sets it only for more than one process per node,
# and the number of threads can change the order of a sum
ONE_THREAD = dict(OMP_NUM_THREADS='1')
# the collective timeout (seconds) of the killed-node run: its survivor must end within it
TIMEOUT_S = 90


def options(iters=ITERS, *more):
    """Trains ``iters`` iterations of 2 images per rank (BatchNorm needs 2), checkpoints at the
    end and does not validate."""
    return ['--cfg-options', f'train_cfg.max_iters={iters}', f'train_cfg.val_begin={iters + 1}',
            f'default_hooks.checkpoint.interval={iters}', 'default_hooks.logger.interval=1',
            'train_dataloader.batch_size=2', *IN_PROCESS_DATA, *more]


def weights(work_dir):
    return torch.load(work_dir / f'iter_{ITERS}.pth', map_location='cpu',
                      weights_only=False)['state_dict']


def assert_same_weights(work_dir, reference):
    state = weights(work_dir)
    assert state.keys() == reference.keys()
    different = [name for name, tensor in state.items() if not torch.equal(tensor, reference[name])]
    assert not different, f'{len(different)} of {len(state)} tensors differ, first {different[:3]}'


@pytest.fixture(scope='module')
def workspace(tmp_path_factory):
    root = tmp_path_factory.mktemp('launchers')
    make('ade20k', str(root / 'data/synthetic_ade20k'), num_train=4, num_val=2, size=128)
    return root


@pytest.fixture(scope='module')
def reference(workspace):
    """The weights of the one-node, two-process run."""
    work_dir = workspace / 'one_node'
    out = run(workspace, 'bash', REPO / 'tools/dist_train.sh', SEG_CONFIG, 2, '--work-dir',
              work_dir, *options(), PORT=str(free_port()), **ONE_THREAD)
    # the launcher's exit code is 0 only when both ranks returned 0
    assert 'GPU number: 2' in out and f'Iter(train) [{ITERS}/{ITERS}]' in out
    assert sorted(p.name for p in work_dir.glob('*.pth')) == [f'iter_{ITERS}.pth']
    return weights(work_dir)


def test_one_process_resumes_a_two_process_run(workspace, reference):
    work_dir = workspace / 'one_node'
    out = run(workspace, sys.executable, REPO / 'tools/train.py', SEG_CONFIG, '--work-dir',
              work_dir, '--resume', work_dir / f'iter_{ITERS}.pth', *options(ITERS + 1))
    assert f'resumed epoch: 0, iter: {ITERS}' in out
    assert f'Iter(train) [{ITERS + 1}/{ITERS + 1}]' in out and 'Iter(train) [1/' not in out
    meta = torch.load(work_dir / f'iter_{ITERS + 1}.pth', map_location='cpu',
                      weights_only=False)['meta']
    assert meta['iter'] == ITERS + 1


@pytest.fixture(scope='module')
def slurm(tmp_path_factory):
    """A one-node Slurm (2 CPUs, no GPU) with its files in a temporary folder; the environment
    that points srun at it."""
    root = tmp_path_factory.mktemp('slurm')
    script = ['bash', str(REPO / 'tools/ci/local_slurm.sh')]
    ports = dict(SLURMCTLD_PORT=str(free_port()), SLURMD_PORT=str(free_port()), SLURM_CPUS='2')
    started = subprocess.run([*script, 'start', str(root)], env=dict(os.environ, **ports),
                             capture_output=True, text=True, timeout=600)
    try:
        if started.returncode:
            pytest.fail('could not bring up a local Slurm (tools/ci/local_slurm.sh start; it needs '
                        f'root, or slurm-wlm and munge installed):\n{started.stderr}',
                        pytrace=False)
        yield dict(SLURM_CONF=str(root / 'slurm.conf'))
    finally:
        subprocess.run([*script, 'stop', str(root)], check=True, timeout=120)


def test_slurm_train_then_test(workspace, slurm, reference):
    work_dir = workspace / 'slurm'
    # 2 tasks of 1 CPU and no GPU, on the node's 2 CPUs
    env = dict(slurm, GPUS='2', GPUS_PER_NODE='0', CPUS_PER_TASK='1', **ONE_THREAD)
    out = run(workspace, 'bash', REPO / 'tools/slurm_train.sh', 'ci', 'mmssm-train', SEG_CONFIG,
              work_dir, *options(), MASTER_PORT=str(free_port()), **env)
    assert '--gres' not in out
    assert 'Distributed launcher: slurm' in out and 'GPU number: 2' in out
    assert f'Iter(train) [{ITERS}/{ITERS}]' in out
    assert_same_weights(work_dir, reference)

    out = run(workspace, 'bash', REPO / 'tools/slurm_test.sh', 'ci', 'mmssm-test', SEG_CONFIG,
              work_dir / f'iter_{ITERS}.pth', '--work-dir', work_dir, '--cfg-options',
              *IN_PROCESS_DATA, MASTER_PORT=str(free_port()), **env)
    assert 'Distributed launcher: slurm' in out
    assert 0 <= metric(out, 'mIoU') <= 100


def launch_two_nodes(workspace, work_dir, iters, *more):
    """Starts tools/dist_train.sh twice, as nodes 0 and 1 of one process each; their output goes
    to work_dir/node{0,1}.log."""
    work_dir.mkdir()
    port = str(free_port())
    nodes = []
    for rank in range(2):
        env = dict(os.environ, PYTHON=sys.executable, PYTHONPATH=str(REPO), NNODES='2',
                   NODE_RANK=str(rank), MASTER_ADDR='127.0.0.1', PORT=port, **ONE_THREAD)
        with open(work_dir / f'node{rank}.log', 'w') as log:
            nodes.append(subprocess.Popen(
                ['bash', str(REPO / 'tools/dist_train.sh'), str(SEG_CONFIG), '1', '--work-dir',
                 str(work_dir), *options(iters, *more)], cwd=workspace, env=env, stdout=log,
                stderr=subprocess.STDOUT))
    return nodes


def processes_under(pid):
    """``pid`` and its descendants: torchrun starts each worker in a session of its own."""
    children = {}
    for stat in Path('/proc').glob('[0-9]*/stat'):
        try:  # "pid (name) state ppid ...", the name may hold spaces
            child, rest = stat.read_text().split(' ', 1)
            children.setdefault(int(rest.rsplit(')', 1)[1].split()[1]), []).append(int(child))
        except (OSError, IndexError):  # gone meanwhile
            pass
    found, todo = [], [pid]
    while todo:
        found.append(todo.pop())
        todo += children.get(found[-1], [])
    return found


def kill_node(node):
    if node.poll() is not None:  # its pid may be another process's now
        return
    for pid in processes_under(node.pid):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    node.wait()


def test_two_nodes_train_as_one(workspace, reference):
    work_dir = workspace / 'two_nodes'
    nodes = launch_two_nodes(workspace, work_dir, ITERS)
    try:
        codes = [node.wait(timeout=600) for node in nodes]
    finally:
        for node in nodes:
            kill_node(node)
    out = (work_dir / 'node0.log').read_text()
    assert codes == [0, 0], f'exit codes {codes}:\n{out[-5000:]}'
    assert 'GPU number: 2' in out and f'Iter(train) [{ITERS}/{ITERS}]' in out
    assert_same_weights(work_dir, reference)


def test_killed_node_is_named(workspace):
    work_dir = workspace / 'killed_node'
    nodes = launch_two_nodes(workspace, work_dir, 10000, f'env_cfg.dist_cfg.timeout={TIMEOUT_S}')
    log = work_dir / 'node0.log'
    try:
        deadline = time.monotonic() + 600
        while 'Iter(train) [' not in log.read_text():
            assert time.monotonic() < deadline and nodes[0].poll() is None, log.read_text()[-5000:]
            time.sleep(0.5)
        kill_node(nodes[1])
        killed = time.monotonic()
        code = nodes[0].wait(timeout=TIMEOUT_S + 60)
        ended_after = time.monotonic() - killed
    finally:
        for node in nodes:
            kill_node(node)
    out = log.read_text()
    assert code != 0
    assert ('error: rank 1 stopped answering: the connection closed during a collective. Was '
            'that process killed (out of memory?) or its node lost?') in out, out[-5000:]
    assert ended_after < TIMEOUT_S
    SUMMARY.append(f'two nodes, node 1 killed: node 0 named rank 1 and ended {ended_after:.0f} s '
                   f'later (collective timeout {TIMEOUT_S} s, roll call '
                   f'{distributed.ROLL_CALL_S} s)')
