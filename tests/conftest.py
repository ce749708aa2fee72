import os
import sys

import numpy as np
import pytest

# Tests import the reference helpers beside them.
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def engine():
    import tflite_mpc
    return tflite_mpc.Engine("rep3")


@pytest.fixture
def rng(request):
    return np.random.default_rng(abs(hash(request.node.name)) % (2**32))
