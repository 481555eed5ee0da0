import os

import pytest
import torch

# Without a CUDA GPU the Triton kernels run in Triton's interpreter, which has to be switched on
# before anything decorates a kernel with triton.jit
if not torch.cuda.is_available():
    os.environ.setdefault('TRITON_INTERPRET', '1')


#: lines tests want shown at the end of the run (parameter counts, ...), not only on failure
SUMMARY = []


def pytest_terminal_summary(terminalreporter):
    if SUMMARY:
        terminalreporter.section('mmssm figures')
        for line in SUMMARY:
            terminalreporter.write_line(line)


def pytest_sessionfinish(session):
    workeroutput = getattr(session.config, 'workeroutput', None)
    if workeroutput is not None:  # a pytest-xdist worker: its lines go to the controller
        workeroutput['mmssm_summary'] = list(SUMMARY)


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node, error):
    SUMMARY.extend(getattr(node, 'workeroutput', {}).get('mmssm_summary', []))
