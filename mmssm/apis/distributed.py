"""The process group of a run without a GPU, and naming the rank a distributed run lost.

A rank that stops (SIGSTOP, a hung file system, a swapped-out node) leaves the others blocked in
their next collective with no log line; one that dies (killed, out of memory, its node gone) breaks
their connections to it. Every collective times out (``env_cfg.dist_cfg.timeout``, seconds,
COLLECTIVE_TIMEOUT_S by default), and a rank whose collective timed out or lost a peer holds a roll
call in the launcher's rendezvous store, which outlives the workers (torchrun's, on the first node)
or lives in rank 0 (srun): the ranks that do not sign in within ROLL_CALL_S are named. Gloo cannot
say which rank a broken connection led to, and its monitored barrier fails outright on one.
"""
import datetime
import os
import re
import subprocess
import threading
import time

import torch.distributed as dist

from .config_check import ConfigError

COLLECTIVE_TIMEOUT_S = 600
# how long the ranks that are still answering get to sign in
ROLL_CALL_S = 30
_TIMED_OUT = re.compile(r'timed out', re.IGNORECASE)
_CONNECTION_LOST = re.compile(r'connection (closed|reset) by peer|broken pipe', re.IGNORECASE)
_roll_call = None


def _slurm_environment():
    """Sets what init_process_group reads from what srun sets, as mmengine's init_dist('slurm')
    does: the first node of the job holds the store, at MASTER_PORT (29500 unless set)."""
    missing = [name for name in ('SLURM_PROCID', 'SLURM_NTASKS', 'SLURM_NODELIST')
               if name not in os.environ]
    if missing:
        raise ConfigError(f'--launcher slurm needs the variables srun sets ({", ".join(missing)} '
                          'missing): start it with tools/slurm_train.sh or tools/slurm_test.sh')
    os.environ['RANK'] = os.environ['SLURM_PROCID']
    os.environ['WORLD_SIZE'] = os.environ['SLURM_NTASKS']
    os.environ['LOCAL_RANK'] = os.environ.get('SLURM_LOCALID', '0')
    os.environ.setdefault('MASTER_PORT', '29500')
    if 'MASTER_ADDR' not in os.environ:
        hosts = subprocess.run(['scontrol', 'show', 'hostnames', os.environ['SLURM_NODELIST']],
                               capture_output=True, text=True, check=True).stdout.split()
        os.environ['MASTER_ADDR'] = hosts[0]


def init_cpu_process_group(launcher, timeout):
    """Starts the gloo process group of a run on CPUs from what ``launcher`` ('pytorch': torchrun,
    'slurm': srun) set in the environment; collectives time out after ``timeout`` seconds.
    mmengine's init_dist would pin a CUDA device, so the Runner is left to use this group."""
    if launcher == 'slurm':
        _slurm_environment()
    elif launcher != 'pytorch':
        raise ValueError(f'launcher {launcher!r}: expected pytorch or slurm')
    if not dist.is_initialized():
        dist.init_process_group('gloo', timeout=datetime.timedelta(seconds=timeout))


def watch_ranks():
    """Connects to the rendezvous store while every rank is answering, for a later roll call."""
    global _roll_call
    if not (dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1):
        return
    address = os.environ.get('MASTER_ADDR'), os.environ.get('MASTER_PORT')
    if None in address:
        return
    store = dist.TCPStore(address[0], int(address[1]), is_master=False,
                          timeout=datetime.timedelta(seconds=ROLL_CALL_S))
    # torchrun's store outlives a restart of the workers: each attempt calls its own roll
    prefix = f'mmssm/roll_call/{os.environ.get("TORCHELASTIC_RESTART_COUNT", "0")}/'
    _roll_call = dict(store=store, address=':'.join(address), prefix=prefix,
                      rank=dist.get_rank(), world_size=dist.get_world_size())


def _silent_ranks():
    """Signs this rank in and returns the ranks that have not signed in after ROLL_CALL_S; raises
    TimeoutError when the store itself does not answer."""
    store, prefix = _roll_call['store'], _roll_call['prefix']
    outcome = {}

    def call():
        try:
            store.set(f'{prefix}{_roll_call["rank"]}', '')
            deadline = time.monotonic() + ROLL_CALL_S
            while True:
                silent = [rank for rank in range(_roll_call['world_size'])
                          if not store.check([f'{prefix}{rank}'])]
                if not silent or time.monotonic() > deadline:
                    outcome['silent'] = silent
                    return
                time.sleep(0.2)
        except RuntimeError as error:  # the store's connection failed
            outcome['error'] = error

    # a stopped store keeps a request waiting past the store's own timeout
    caller = threading.Thread(target=call, daemon=True)
    caller.start()
    caller.join(2 * ROLL_CALL_S)
    if 'silent' not in outcome:
        raise TimeoutError(outcome.get('error', 'the store did not reply'))
    return outcome['silent']


def lost_ranks_message(error):
    """The one-line report of ``error`` when it is a collective's timeout or lost connection and
    the roll call names the ranks missing (or finds the store gone); None otherwise."""
    timed_out = bool(_TIMED_OUT.search(str(error)))
    if _roll_call is None or not (timed_out or _CONNECTION_LOST.search(str(error))):
        return None
    try:
        silent = _silent_ranks()
    except TimeoutError:
        return (f'error: a collective failed and the rendezvous store at {_roll_call["address"]} '
                'does not answer either: the process holding it (rank 0, or torchrun on the '
                'first node) is stopped or gone. Its log shows where it was')
    if not silent:
        return None
    names = f'rank{"s" * (len(silent) > 1)} {", ".join(map(str, silent))}'
    if timed_out:
        return (f'error: {names} stopped answering: a collective got no reply within the '
                'timeout (env_cfg.dist_cfg.timeout, seconds). Is that process stopped, hung or '
                'out of memory? Its log shows where it was')
    return (f'error: {names} stopped answering: the connection closed during a collective. '
            'Was that process killed (out of memory?) or its node lost? Its log shows where it '
            'was')
