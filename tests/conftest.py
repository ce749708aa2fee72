import os
import sys

import numpy as np
import pytest

# Tests import the reference helpers beside them.
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))


def pytest_generate_tests(metafunc):
    """@pytest.mark.protocols("rep3", "mal3"): the test runs once per protocol (its `engine`)."""
    m = metafunc.definition.get_closest_marker("protocols")
    if m and "protocol" in metafunc.fixturenames:
        metafunc.parametrize("protocol", m.args)


@pytest.fixture
def protocol():
    return "rep3"


@pytest.fixture
def engine(protocol):
    import tflite_mpc
    return tflite_mpc.Engine(protocol)


@pytest.fixture
def rng(request):
    return np.random.default_rng(abs(hash(request.node.name)) % (2**32))


@pytest.fixture
def no_faults():
    """Fault-injection tests (mpc/fault.h): nothing armed before or after the test."""
    from tflite_mpc import _native
    _native._fault_arm(0, "(none)", "add")  # arming resets the count of altered messages
    _native._fault_disarm()
    yield
    _native._fault_disarm()
