"""Start-up: ``Farm()`` to the first result, for a script that imports a slow module.

    python bench/startup.py [--reps 5] [--workers 2,4]

Each case runs a fresh Python process on a generated script and times, inside it, from just
before the cluster starts to the first result in hand (the interpreter's own start and the
script's imports in the parent are the same for every engine, and left out). The slow module
spins one second of CPU when imported, as a heavy library (``from brian2 import *``) does.
Cases: a bare ``LocalCluster`` + ``Client`` on a script *without* that import (the
reference), the same on a script *with* it (Dask's spawned workers run the script again,
each), and ``Farm()`` + ``farm.map`` on both scripts. Cases are interleaved repetition by
repetition; the table shows medians (min-max) and the ratio to the reference.
"""

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap

SLOW_MODULE = """
import time

_end = time.thread_time() + 1.0
while time.thread_time() < _end:  # one second of CPU, as a heavy import takes
    pass
"""

SCRIPT = """
import sys
import time

if sys.argv[1] == "slow":
    import slowmod  # noqa: F401  (the script needs it; the task does not)


def task(x):
    return x + 1


if __name__ == "__main__":
    engine, n = sys.argv[2], int(sys.argv[3])
    t0 = time.perf_counter()
    if engine == "farm":
        from daskfarm import Farm

        with Farm(n_workers=n, dashboard=False) as farm:
            first = next(iter(farm.map(task, [1], progress=False)))
            seconds = time.perf_counter() - t0
    else:
        from distributed import Client, LocalCluster

        with LocalCluster(n_workers=n, threads_per_worker=1, dashboard_address=None) as cluster:
            with Client(cluster) as client:
                first = client.submit(task, 1).result()
                seconds = time.perf_counter() - t0
    assert first == 2
    print(seconds)
"""

CASES = [("LocalCluster, script without the import", "fast", "dask"),
         ("LocalCluster, script importing a 1 s module", "slow", "dask"),
         ("Farm(), script without the import", "fast", "farm"),
         ("Farm(), script importing a 1 s module", "slow", "farm")]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--workers", default="2,4")
    args = parser.parse_args()
    counts = [int(n) for n in args.workers.split(",")]
    tmp = tempfile.mkdtemp(prefix="daskfarm-startup-")
    with open(os.path.join(tmp, "slowmod.py"), "w") as f:
        f.write(textwrap.dedent(SLOW_MODULE))
    script = os.path.join(tmp, "script.py")
    with open(script, "w") as f:
        f.write(textwrap.dedent(SCRIPT))
    env = dict(os.environ)
    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env["PYTHONPATH"] = os.pathsep.join(p for p in (tmp, here, env.get("PYTHONPATH")) if p)
    times: dict = {}
    loads = [os.getloadavg()[0]]
    for _ in range(args.reps):
        for n in counts:
            for name, kind, engine in CASES:
                out = subprocess.run([sys.executable, script, kind, engine, str(n)], env=env,
                                     capture_output=True, text=True, timeout=300, check=True)
                times.setdefault((n, name), []).append(float(out.stdout.split()[-1]))
        loads.append(os.getloadavg()[0])
    print(f"# seconds from cluster start to the first result, median of {args.reps} "
          f"(min-max); {os.cpu_count()} CPUs; 1-min load average "
          f"{min(loads):.1f}-{max(loads):.1f}")
    for n in counts:
        ref = statistics.median(times[(n, CASES[0][0])])
        print(f"\n## {n} workers")
        for name, _, _ in CASES:
            values = times[(n, name)]
            med = statistics.median(values)
            print(f"{name:<46} {med:6.2f} s ({min(values):.2f}-{max(values):.2f})  "
                  f"{med / ref:.2f}x the reference")


if __name__ == "__main__":
    main()
