"""A rank that stops or dies does not hang the others: their collective fails, times out at the
latest, and names it; when the rank holding the rendezvous store is the one lost, that is said."""
import datetime
import os
import signal
import socket

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from mmssm.apis import distributed, user_errors_reported


def free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def rank_main(rank, port, messages, lost, how):
    os.environ.update(MASTER_ADDR='127.0.0.1', MASTER_PORT=str(port))
    dist.init_process_group('gloo', rank=rank, world_size=2,
                            timeout=datetime.timedelta(seconds=3))
    distributed.watch_ranks()
    distributed.ROLL_CALL_S = 2
    dist.barrier()
    if rank == lost:
        os.kill(os.getpid(), how)
    try:
        with user_errors_reported():
            dist.all_reduce(torch.ones(2))
    except SystemExit as error:
        messages.put(str(error))


@pytest.mark.parametrize('lost, how, expected', [
    (1, signal.SIGSTOP, 'error: rank 1 stopped answering: a collective got no reply within the '
                        'timeout (env_cfg.dist_cfg.timeout, seconds)'),
    (1, signal.SIGKILL, 'error: rank 1 stopped answering: the connection closed during a '
                        'collective. Was that process killed (out of memory?) or its node lost?'),
    # rank 0 holds the store here (as under srun)
    (0, signal.SIGKILL, 'error: a collective failed and the rendezvous store at 127.0.0.1:{port} '
                        'does not answer either: the process holding it (rank 0, or torchrun on '
                        'the first node) is stopped or gone'),
    (0, signal.SIGSTOP, 'error: a collective failed and the rendezvous store at 127.0.0.1:{port} '
                        'does not answer either'),
], ids=['stopped', 'killed', 'store-killed', 'store-stopped'])
def test_lost_rank_is_named(lost, how, expected):
    context = mp.get_context('fork')
    messages = context.Queue()
    port = free_port()
    ranks = [context.Process(target=rank_main, args=(r, port, messages, lost, how))
             for r in range(2)]
    for process in ranks:
        process.start()
    try:
        message = messages.get(timeout=60)
    finally:
        for process in ranks:
            if process.is_alive():
                os.kill(process.pid, signal.SIGKILL)
            process.join(10)
    assert message.startswith(expected.format(port=port))
