#!/usr/bin/env python3
"""A sweep on machines you can ssh into, with ``distributed.SSHCluster``.

    pip install 'daskfarm[deploy]'           # asyncssh, here; daskfarm on every host
    python deploy/ssh/ssh_farm.py head node1 node2 --workers-per-host 4 --store results/

The first host runs the scheduler (with the /farm panel), every host after it runs
``--workers-per-host`` workers. Every host needs the same Python environment with daskfarm
and your task's package, at ``--remote-python`` (default: this interpreter's path). SSH
uses your keys and ~/.ssh/config (``--ssh-port``, ``--ssh-user``, ``--ssh-key`` override).
The panel token travels to the scheduler inside the Dask config (SSHCluster passes the
client's config along), so ``farm.panel_link`` unlocks the controls.

Replace ``simulate`` and ``parameters`` with your own.
"""

from __future__ import annotations

import argparse
import math
import secrets
import sys
import time


def simulate(params):
    """A stand-in for a real simulation."""
    time.sleep(params.get("pause", 0.1))
    return math.sin(params["x"])


def parameters(n: int, pause: float):
    for i in range(n):
        yield {"x": i / n, "pause": pause}


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("hosts", nargs="+", help="scheduler host, then worker hosts")
    p.add_argument("--workers-per-host", type=int, default=1)
    p.add_argument("--threads", type=int, default=1, help="threads per worker")
    p.add_argument("--remote-python", default=sys.executable,
                   help="the Python with daskfarm on the hosts")
    p.add_argument("--ssh-port", type=int)
    p.add_argument("--ssh-user")
    p.add_argument("--ssh-key", action="append", help="private key file (repeatable)")
    p.add_argument("--no-known-hosts", action="store_true",
                   help="do not check host keys (only on a network you trust)")
    p.add_argument("--interface", help="network interface for Dask's traffic, e.g. ib0")
    p.add_argument("--dashboard-address", default=":8787")
    p.add_argument("--store", default="results")
    p.add_argument("--items", type=int, default=100)
    p.add_argument("--pause", type=float, default=0.1)
    args = p.parse_args(argv)
    if len(args.hosts) < 2:
        p.error("give the scheduler host and at least one worker host "
                "(the same host twice is fine)")

    import dask
    from distributed import SSHCluster

    from daskfarm import Farm

    connect_options: dict = {}
    if args.ssh_port:
        connect_options["port"] = args.ssh_port
    if args.ssh_user:
        connect_options["username"] = args.ssh_user
    if args.ssh_key:
        connect_options["client_keys"] = args.ssh_key
    if args.no_known_hosts:
        connect_options["known_hosts"] = None

    scheduler_options = {"dashboard_address": args.dashboard_address,
                         "preload": ["daskfarm.dashboard"]}
    worker_options = {"n_workers": args.workers_per_host, "nthreads": args.threads}
    if args.interface:
        scheduler_options["interface"] = worker_options["interface"] = args.interface

    started = time.monotonic()
    # SSHCluster sends this process's Dask config to the scheduler: the preload reads the token
    with dask.config.set({"daskfarm.token": secrets.token_urlsafe(24)}):
        cluster = SSHCluster(
            args.hosts, connect_options=connect_options, remote_python=args.remote_python,
            scheduler_options=scheduler_options, worker_options=worker_options,
        )
    with cluster, Farm(cluster) as farm:
        print(f"panel: {farm.panel_link}", flush=True)
        run = farm.map(simulate, parameters(args.items, args.pause), numitems=args.items,
                       store=args.store, name="simulate")
        for i, _ in enumerate(run):
            if i == 0:
                print(f"first result after {time.monotonic() - started:.1f} s", flush=True)
        summary = run.wait()
        print(f"{summary.done} done, {summary.failed} failed, {summary.skipped} skipped; "
              f"results in {args.store}/", flush=True)


if __name__ == "__main__":
    main()
