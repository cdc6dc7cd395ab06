"""lab4: pose-conditioned video prediction with a conditional VAE (the Lab 4 assignment)."""

import os

__version__ = "0.1.0"

# oneDNN, which runs PyTorch's CPU convolutions, keeps only its 1024 most recent compiled kernels
# unless told otherwise. A process that trains, rolls out and benchmarks at two precisions uses
# more, and a kernel pushed out is compiled again on its next use; room for 4096 keeps them all.
# oneDNN reads this when it makes its first kernel, so it takes effect when lab4 is imported
# before any convolution ran; a value the user already set wins.
os.environ.setdefault("ONEDNN_PRIMITIVE_CACHE_CAPACITY", "4096")
