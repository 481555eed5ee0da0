"""The Triton kernels as an H100 (sm_90) would run them, compiled here without a GPU by
``tools/benchmark_scan.py --codegen`` (about 3 minutes: every kernel is compiled by Triton and
ptxas): no spills, registers within budget (``--check``), and the scans along time inside a
thread for the row routes (Vim, MambaVision)."""
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
        if len(words) > len(columns) and words[-len(columns)] in ('fwd', 'bwd'):
            values = dict(zip(columns, words[-len(columns):]))
            table[' '.join(words[:-len(columns)]), values['kernel']] = values
    assert {k for _, k in table} == {'fwd', 'bwd'} and len(table) == 6, done.stdout
    for (name, kernel), values in table.items():
        assert values['spill_B'] == '0', (name, kernel, values)
        if not name.startswith('VMamba'):
            assert values['t-lanes'] == '1', (name, kernel, values)
            assert values['rev'] == '0', (name, kernel, values)
