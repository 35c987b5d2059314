"""msrun for a node other than node 0 of a multi-node MindSpore run.

msrun (MindSpore 2.10) starts its scheduler on every node whose address is the master's (``_ProcessManager``
asks ``_is_local_ip(master_addr)``). On separate machines only node 0 is; several "nodes" on one host (the
loopback test, or a large machine split into nodes) would each start a scheduler on the master's port, and every
one but the first fails to bind it and reports the job failed. A data-parallel job's scheduler belongs to node 0,
so this module tells msrun, on any other node, that it is not the master, then runs it with the arguments given:

    python -m runners.execution.msrun_node --worker_num 4 --local_worker_num 2 --node_rank 1 ... python SCRIPT
"""

from __future__ import annotations

import sys


def main() -> int:
    from mindspore.parallel.cluster import run as msrun
    from mindspore.parallel.cluster.process_entity import _api

    _api._is_local_ip = lambda address: False  # noqa: SLF001 - this node never starts the scheduler
    sys.argv[0] = "msrun"
    msrun.main()
    return 0


if __name__ == "__main__":
    sys.exit(main())
