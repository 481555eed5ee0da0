import os

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
