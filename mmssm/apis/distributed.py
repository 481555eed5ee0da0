"""Naming the rank a distributed run waits for.

A rank that stops (SIGSTOP, a hung file system, a swapped-out node) leaves the others blocked in
their next collective with no log line. Every collective times out (``env_cfg.dist_cfg.timeout``,
seconds, COLLECTIVE_TIMEOUT_S by default), and a rank whose collective timed out asks gloo's
monitored barrier, on a group of its own made while every rank was answering, which ranks are
silent.
"""
import datetime
import os
import re
import subprocess

import torch.distributed as dist

from .config_check import ConfigError

COLLECTIVE_TIMEOUT_S = 600
# how long the ranks that are still answering get to reach the barrier
ROLL_CALL_S = 30
_roll_call = None


def watch_ranks():
    """Makes the roll-call group; a collective call, so every rank makes it at start-up."""
    global _roll_call
    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        _roll_call = dist.new_group(backend='gloo')


def silent_ranks(error):
    """The ranks that do not answer, after ``error`` on this rank; None when ``error`` is not a
    collective's timeout or the ranks cannot be asked."""
    if _roll_call is None or 'timed out' not in str(error).lower():
        return None
    try:
        dist.monitored_barrier(group=_roll_call, timeout=datetime.timedelta(seconds=ROLL_CALL_S),
                               wait_all_ranks=True)
    except RuntimeError as barrier_error:
        # "[Rank 0]: Ranks 1, 3 failed to pass monitoredBarrier in 30000 ms"
        match = re.search(r'Ranks? ([\d, ]+) failed to pass', str(barrier_error))
        if match:
            return [int(r) for r in match.group(1).split(',')]
    return None


def init_cpu_process_group(launcher, timeout):
    """The gloo process group of a run without GPUs (mmengine's init_dist pins a CUDA device), from
    torchrun's variables (``pytorch``) or Slurm's (``slurm``); ``timeout`` in seconds."""
    if dist.is_initialized():
        return
    if launcher == 'slurm':
        node_list = os.environ['SLURM_NODELIST']
        first = subprocess.check_output(['scontrol', 'show', 'hostname', node_list], text=True)
        os.environ.setdefault('MASTER_ADDR', first.split()[0])
        os.environ.setdefault('MASTER_PORT', '29500')
        os.environ.update(RANK=os.environ['SLURM_PROCID'], WORLD_SIZE=os.environ['SLURM_NTASKS'],
                          LOCAL_RANK=os.environ['SLURM_LOCALID'])
    elif launcher != 'pytorch':
        raise ConfigError(f'--launcher {launcher} needs a GPU: without one, use --launcher '
                          f'pytorch (torchrun, tools/dist_train.sh) or slurm')
    dist.init_process_group('gloo', timeout=datetime.timedelta(seconds=timeout or
                                                               COLLECTIVE_TIMEOUT_S))
