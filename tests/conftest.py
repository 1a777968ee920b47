import os

from hypothesis import HealthCheck, settings

settings.register_profile("ci", max_examples=30, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("dev", max_examples=100, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "dev"))

# The compiled kernels take shallow graphs once a process has run WARM_CALLS dynamic programs
# (gtn/jit.py). Off here, so that which route a test exercises does not depend on the tests
# run before it: tests/test_gtn_jit.py forces the kernels and checks them against the array
# routes, and deep graphs still take them from the first call.
from gtn import jit  # noqa: E402

jit.WARM_CALLS = 10**9
