"""Suite-wide settings."""

import os
import sys

import matplotlib
import pytest
import torch

matplotlib.use("Agg")  # figures are written, never shown

# The tests integrate small batches: intra-op threads cost more than they save on tensors this size, and on
# a loaded 2-core machine they make solves 20-40x slower. One thread keeps the suite fast and its timing stable.
torch.set_num_threads(1)


@pytest.fixture(scope="session")
def local_ray():
    """A real local Ray with 2 CPUs, started once for every test that asks for it (it takes 10-20 s here). Its
    workers get this process's module path, so they import the test modules' trial functions too."""
    ray = pytest.importorskip("ray", reason="Ray is not installed (pip install 'gnode[ray]')")
    ray.init(
        num_cpus=2,
        include_dashboard=False,
        log_to_driver=False,
        runtime_env={"env_vars": {"PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}},
    )
    yield ray
    ray.shutdown()
