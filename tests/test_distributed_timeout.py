"""A stopped rank does not hang the others: their collective times out and names it."""
import datetime
import os
import signal
import socket

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from mmssm.apis import distributed, user_errors_reported


def free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def rank_main(rank, port, messages):
    os.environ.update(MASTER_ADDR='127.0.0.1', MASTER_PORT=str(port))
    dist.init_process_group('gloo', rank=rank, world_size=2,
                            timeout=datetime.timedelta(seconds=3))
    distributed.watch_ranks()
    distributed.ROLL_CALL_S = 2
    if rank == 1:
        os.kill(os.getpid(), signal.SIGSTOP)
    try:
        with user_errors_reported():
            dist.all_reduce(torch.ones(2))
    except SystemExit as error:
        messages.put(str(error))


def test_stopped_rank_is_named():
    context = mp.get_context('fork')
    messages = context.Queue()
    port = free_port()
    ranks = [context.Process(target=rank_main, args=(r, port, messages)) for r in range(2)]
    for process in ranks:
        process.start()
    try:
        message = messages.get(timeout=60)
    finally:
        os.kill(ranks[1].pid, signal.SIGKILL)
        for process in ranks:
            process.join(10)
    assert message.startswith('error: rank 1 stopped answering: a collective got no reply '
                              'within the timeout (env_cfg.dist_cfg.timeout, seconds)')
