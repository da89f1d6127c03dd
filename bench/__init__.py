"""The benchmark: `python -m bench` (`make bench`). See BENCHMARKS.md for what it measures and the latest figures."""

import os

# The load generator starts processes while its gRPC channels are open; gRPC's fork handlers are not needed
# (children exec at once) and would only log that they were skipped.
os.environ.setdefault("GRPC_ENABLE_FORK_SUPPORT", "false")
