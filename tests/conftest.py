"""Settings for the project's own tests."""

from __future__ import annotations

from hypothesis import settings

# The tests run on a loaded 2-core machine beside other work (CI, xdist workers, the servers
# they start): a per-example time limit there measures the machine, not the code. Speed is
# measured in benchmarks/, never asserted in tests.
settings.register_profile("project-tests", deadline=None)
settings.load_profile("project-tests")
