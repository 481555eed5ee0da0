import os

import torch

# Without a CUDA GPU the Triton kernels run in Triton's interpreter, which has to be switched on
# before anything decorates a kernel with triton.jit
if not torch.cuda.is_available():
    os.environ.setdefault('TRITON_INTERPRET', '1')
