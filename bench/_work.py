"""Workloads shared by the benchmarks (importable, so worker processes load them by name)."""

import time


def noop(x):
    return x


def sleep_1ms(x):
    time.sleep(0.001)
    return x


def busy_10ms(x):
    """Spin until this thread has used 10 ms of CPU: two cores allow exactly 200 items/s."""
    end = time.thread_time() + 0.010
    while time.thread_time() < end:
        pass
    return x


def busy_100ms(x):
    """Spin until this thread has used 100 ms of CPU."""
    end = time.thread_time() + 0.100
    while time.thread_time() < end:
        pass
    return x


def each(fn, items):
    """``fn`` over a list of items in one call: a batch as one raw Dask task."""
    return [fn(x) for x in items]


def measured_sleep() -> float:
    """What time.sleep(0.001) really takes here (the limit for the sleep workload)."""
    n = 200
    t0 = time.perf_counter()
    for _ in range(n):
        time.sleep(0.001)
    return (time.perf_counter() - t0) / n


def sleep_1s(x):
    time.sleep(1.0)
    return x


def report_loop(n, report):
    """Call report() n times in a tight loop; return the mean seconds per call."""
    t0 = time.perf_counter()
    for i in range(n):
        report(i / n)
    return (time.perf_counter() - t0) / n
