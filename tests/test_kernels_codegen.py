"""The Triton kernels as an H100 (sm_90) would run them, compiled here without a GPU by
``tools/benchmark_scan.py --codegen --check`` on small shapes (about 2 minutes: every kernel is
compiled by Triton and ptxas): no spills, at most 128 registers, no scan op spread over lanes
along time (t-lanes 0: the recurrence is an in-register loop; 1: a scan inside a thread), no
reverse scans, at most two launches per direction. The warps-per-scheduler gate needs the
full-size shapes (``--codegen --check`` without ``--small``, about 5 minutes): the README's
table."""
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_codegen_gates_on_small_shapes():
    env = {k: v for k, v in os.environ.items() if k != 'TRITON_INTERPRET'}
    env['PYTHONPATH'] = os.pathsep.join(p for p in sys.path if p)
    done = subprocess.run([sys.executable, os.path.join(ROOT, 'tools', 'benchmark_scan.py'),
                           '--codegen', '--small', '--check'], env=env, capture_output=True,
                          text=True, timeout=1200)
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    columns = next(line for line in lines if line.startswith('shape')).split()[1:]
    table = {}
    for line in lines:
        words = line.split()
        if len(words) > len(columns) and words[-len(columns)] in ('fwd', 'bwd', 'sum'):
            values = dict(zip(columns, words[-len(columns):]))
            table[' '.join(words[:-len(columns)]), values['kernel']] = values
    # per shape: the forward scan, the backward scan and the backward's sums of partials
    assert {k for _, k in table} == {'fwd', 'bwd', 'sum'} and len(table) == 9, done.stdout
    for (name, kernel), values in table.items():
        assert values['spill_B'] == '0' and int(values['regs']) <= 128, (name, kernel, values)
        assert int(values['t-lanes']) <= 1 and values['rev'] == '0', (name, kernel, values)
        assert int(values['launches']) <= 2, (name, kernel, values)
