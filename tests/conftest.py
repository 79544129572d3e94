"""Suite-wide settings."""

import matplotlib
import torch

matplotlib.use("Agg")  # figures are written, never shown

# The tests integrate small batches: intra-op threads cost more than they save on tensors this size, and on
# a loaded 2-core machine they make solves 20-40x slower. One thread keeps the suite fast and its timing stable.
torch.set_num_threads(1)
