"""Result store benchmark: daskfarm's store against zict.File, sqlite3, shelve and raw files.

Run from the repository root (about 2-3 minutes)::

    python bench/store.py [--reps 3] [--small-reps 5] [--small 100000] [--large 200] [--dir /tmp]

Two data sets, every backend in the same run, repetitions interleaved so that noise hits
every backend alike; each figure is the median of the repetitions (5 for the quick small
set, 3 for the large one), with min-max:

* small: 100,000 results of (float, float) under 32-hex keys (what dask's tokenize gives);
* large: 200 float64 arrays of 8 MB each;
* table: 1,000,000 small records (dict items {i, x}, dict results {y}) in 8 shards:
  ``to_dataframe()``, ``find(i=...)`` of one value (the first call, which builds the
  field's index, and later calls), and pandas reading the same table from a parquet file
  and filtering it, in the same run.

Write = open + store everything + close, *durable per batch*: after every batch (1,000 small
results or 10 arrays) what was written survives a crash (fsync or equivalent). daskfarm
writes the small set as 8 sessions of 12,500 results (8 shards), so the read figure is a
merge over 8 shards. Read = reopen + iterate every (key, value), each value unpickled and
dropped. The slow stores run on the first results only, to stay within the time budget
(small: zict.File, one fsync per file, 2,000; shelve 20,000; large: all three others, 50
arrays); rates are per result either way. On the large set, daskfarm and raw files
alternate batch by batch (the shared disk's speed swings by 3x within a minute), so the
ratio of the two is measured under the same conditions. Reads come from the page
cache (the machine has far more RAM than the data), so they measure CPU, not the disk.
"""

from __future__ import annotations

import argparse
import os
import pathlib
import pickle
import shelve
import shutil
import sqlite3
import statistics
import struct
import sys
import tempfile
import time
from functools import partial

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

import numpy as np
import zict

from daskfarm.store import DataManager

BATCH = 1000  # small results per durable batch
LARGE_BATCH = 10  # arrays per durable batch
SHARDS = 8
dumps = partial(pickle.dumps, protocol=5)


def fsync_paths(*paths):
    for p in paths:
        fd = os.open(p, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def batches(n, size):
    return [(lo, min(n, lo + size)) for lo in range(0, n, size)]


# ---- backends: write(dir, keys, values, batch) and read(dir) -> number of values ------------


def daskfarm_write(d, keys, values, batch, items=None):
    n = len(keys)
    shards = SHARDS if batch == BATCH else 1
    with DataManager(d) as dm:
        for j in range(shards):
            lo_j, hi_j = j * n // shards, (j + 1) * n // shards
            with dm.session() as s:
                for lo, hi in batches(hi_j - lo_j, batch):
                    lo, hi = lo + lo_j, hi + lo_j
                    its = items[lo:hi] if items else [None] * (hi - lo)
                    s.put_many(zip(keys[lo:hi], its, values[lo:hi]))
                    s.flush()  # write + fdatasync of one block (+ fsynced blob files)


def daskfarm_read(d):
    with DataManager(d) as dm:
        return sum(1 for _ in dm.iteritems())


def zict_write(d, keys, values, batch):
    files = zict.File(d)
    z = zict.Func(dumps, pickle.loads, files)
    for lo, hi in batches(len(keys), batch):
        for k, v in zip(keys[lo:hi], values[lo:hi]):
            z[k] = v
        # durable: every new file, then the directory entries
        fsync_paths(*(os.path.join(d, files.filenames[k]) for k in keys[lo:hi]), d)


def zict_read(d):
    return sum(1 for _ in zict.Func(dumps, pickle.loads, zict.File(d)).items())


def sqlite_write(d, keys, values, batch, sync="FULL"):
    con = sqlite3.connect(os.path.join(d, "db.sqlite"), isolation_level=None)
    con.execute("PRAGMA journal_mode=WAL")
    con.execute(f"PRAGMA synchronous={sync}")  # FULL: the WAL is fsynced at each commit
    con.execute("CREATE TABLE kv (key TEXT PRIMARY KEY, value BLOB)")
    for lo, hi in batches(len(keys), batch):
        con.execute("BEGIN")
        con.executemany("INSERT OR REPLACE INTO kv VALUES (?, ?)",
                        ((k, dumps(v)) for k, v in zip(keys[lo:hi], values[lo:hi])))
        con.execute("COMMIT")
    con.close()


def sqlite_read(d):
    con = sqlite3.connect(os.path.join(d, "db.sqlite"))
    n = 0
    for _key, value in con.execute("SELECT key, value FROM kv"):
        pickle.loads(value)
        n += 1
    con.close()
    return n


def shelve_write(d, keys, values, batch):
    base = os.path.join(d, "shelf")
    with shelve.open(base, protocol=5) as sh:  # dbm.dumb here: no gdbm/ndbm in this Python
        for lo, hi in batches(len(keys), batch):
            for k, v in zip(keys[lo:hi], values[lo:hi]):
                sh[k] = v
            sh.sync()  # dbm.dumb rewrites its index file
            fsync_paths(*(os.path.join(d, n) for n in os.listdir(d)), d)


def shelve_read(d):
    with shelve.open(os.path.join(d, "shelf"), flag="r") as sh:
        return sum(1 for _ in sh.items())


_LEN = struct.Struct("<Q")


def raw_write(d, keys, values, batch):
    if batch == LARGE_BATCH:  # one file per array: its bytes, written and fsynced
        for k, v in zip(keys, values):
            with open(os.path.join(d, k), "wb") as f:
                f.write(v.data)
                f.flush()
                os.fsync(f.fileno())
        fsync_paths(d)
        return
    with open(os.path.join(d, "raw"), "wb") as f:  # one pickle per batch, length-prefixed
        for lo, hi in batches(len(keys), batch):
            data = dumps((keys[lo:hi], values[lo:hi]))
            f.write(_LEN.pack(len(data)) + data)
            f.flush()
            os.fsync(f.fileno())


def raw_read(d):
    if not os.path.exists(os.path.join(d, "raw")):
        n = 0
        for name in os.listdir(d):
            with open(os.path.join(d, name), "rb") as f:
                buf = bytearray(os.fstat(f.fileno()).st_size)
                f.readinto(buf)
            np.frombuffer(buf)
            n += 1
        return n
    n = 0
    with open(os.path.join(d, "raw"), "rb") as f:
        while head := f.read(_LEN.size):
            _keys, values = pickle.loads(f.read(_LEN.unpack(head)[0]))
            n += len(values)
    return n


# ---- driver -----------------------------------------------------------------------------------


def run(cases, reps, root):
    """cases: [(label, write, read, keys, values, batch)]; returns {label: (writes, reads)}."""
    times = {c[0]: ([], []) for c in cases}
    for rep in range(reps):
        for label, write, read, keys, values, batch in cases:
            d = tempfile.mkdtemp(dir=root, prefix="bench-store-")
            try:
                t = time.perf_counter()
                write(d, keys, values, batch)
                tw = time.perf_counter() - t
                t = time.perf_counter()
                n = read(d)
                tr = time.perf_counter() - t
            finally:
                shutil.rmtree(d)
            assert n == len(keys), (label, n, len(keys))
            times[label][0].append(len(keys) / tw)
            times[label][1].append(len(keys) / tr)
            print(f"  rep {rep + 1}/{reps} {label:<34} {len(keys) / tw:>12,.0f} w/s "
                  f"{len(keys) / tr:>12,.0f} r/s", file=sys.stderr, flush=True)
    return times


def _session_batch(session, keys, values):
    session.put_many(zip(keys, [None] * len(keys), values))
    session.flush()


def _raw_batch(d, keys, values):
    for k, v in zip(keys, values):
        with open(os.path.join(d, k), "wb") as f:
            f.write(v.data)
            f.flush()
            os.fsync(f.fileno())
    fsync_paths(d)


def run_paired(keys, arrays, reps, root):
    """daskfarm and raw files on the large set, alternating batch by batch.

    The shared disk's speed swings by 3x within a minute; alternating every batch of 10
    arrays (and who goes first) puts both under the same conditions, so that their ratio
    means something.
    """
    times = {"daskfarm": ([], []), "raw open().write()": ([], [])}
    for rep in range(reps):
        d1 = tempfile.mkdtemp(dir=root, prefix="bench-store-")
        d2 = tempfile.mkdtemp(dir=root, prefix="bench-store-")
        try:
            spent = [0.0, 0.0]
            t = time.perf_counter()
            dm = DataManager(d1)
            session = dm.session()
            spent[0] += time.perf_counter() - t
            writers = [(0, partial(_session_batch, session)), (1, partial(_raw_batch, d2))]
            for b, (lo, hi) in enumerate(batches(len(keys), LARGE_BATCH)):
                for i, write in writers if b % 2 else writers[::-1]:
                    t = time.perf_counter()
                    write(keys[lo:hi], arrays[lo:hi])
                    spent[i] += time.perf_counter() - t
            t = time.perf_counter()
            session.close()
            dm.close()
            spent[0] += time.perf_counter() - t
            for (label, (w, r)), d, tw, read in zip(times.items(), (d1, d2), spent,
                                                   (daskfarm_read, raw_read)):
                t = time.perf_counter()
                assert read(d) == len(keys)
                w.append(len(keys) / tw)
                r.append(len(keys) / (time.perf_counter() - t))
                print(f"  rep {rep + 1}/{reps} {label:<34} {w[-1]:>12,.0f} w/s {r[-1]:>12,.0f} "
                      "r/s", file=sys.stderr, flush=True)
        finally:
            shutil.rmtree(d1)
            shutil.rmtree(d2)
    return times


def run_table(n, reps, root):
    """Seconds of to_dataframe, find and their pandas-on-parquet counterparts, per rep."""
    import pandas as pd

    rng = np.random.default_rng(7)
    xs = rng.random(n)
    d = tempfile.mkdtemp(dir=root, prefix="bench-store-")
    times = {name: [] for name in ("to_dataframe()", "find(i=v), first call", "find(i=v), later",
                                   "pandas.read_parquet()", "df[df.i == v]")}
    try:
        t = time.perf_counter()
        with DataManager(d) as dm:
            for j in range(SHARDS):
                lo_j, hi_j = j * n // SHARDS, (j + 1) * n // SHARDS
                with dm.session() as s:
                    for lo, hi in batches(hi_j - lo_j, BATCH):
                        s.put_many((f"k{i}", {"i": i, "x": float(xs[i])}, {"y": 2 * float(xs[i])})
                                   for i in range(lo + lo_j, hi + lo_j))
                        s.flush()
        write = time.perf_counter() - t
        parquet = os.path.join(d, ".table.parquet")  # hidden: not part of the store
        with DataManager(d) as dm:
            dm.to_dataframe().to_parquet(parquet, index=False)
        for rep in range(reps):
            wanted = [int(v) for v in rng.integers(0, n, 3)]
            with DataManager(d) as dm:
                t = time.perf_counter()
                df = dm.to_dataframe()
                times["to_dataframe()"].append(time.perf_counter() - t)
                assert len(df) == n
            del df
            with DataManager(d) as dm:
                len(dm)  # the scan, as any open store has done before a query
                t = time.perf_counter()
                assert [r.item["i"] for r in dm.find(i=wanted[0])] == wanted[:1]
                times["find(i=v), first call"].append(time.perf_counter() - t)
                t = time.perf_counter()
                assert [r.item["i"] for r in dm.find(i=wanted[1])] == wanted[1:2]
                times["find(i=v), later"].append(time.perf_counter() - t)
            t = time.perf_counter()
            table = pd.read_parquet(parquet)
            times["pandas.read_parquet()"].append(time.perf_counter() - t)
            t = time.perf_counter()
            assert table[table["i"] == wanted[2]]["i"].tolist() == wanted[2:]
            times["df[df.i == v]"].append(time.perf_counter() - t)
            del table
            print(f"  rep {rep + 1}/{reps} table " + ", ".join(
                f"{k} {v[-1]:.3f} s" for k, v in times.items()), file=sys.stderr, flush=True)
    finally:
        shutil.rmtree(d)
    return write, times


def fmt(rates, scale=1.0):
    med = statistics.median(rates) * scale
    return f"{med:,.0f} ({min(rates) * scale:,.0f}-{max(rates) * scale:,.0f})"


def table(title, times, sizes, mb=None):
    print(f"\n{title}")
    head = f"| backend | N | writes/s | reads/s |{' write MB/s | read MB/s |' if mb else ''}"
    print(head)
    print("|" + "---|" * (head.count("|") - 1))
    for label, (w, r) in times.items():
        row = f"| {label} | {sizes[label]:,} | {fmt(w)} | {fmt(r)} |"
        if mb:
            row += f" {fmt(w, mb)} | {fmt(r, mb)} |"
        print(row)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=3, help="repetitions of the large set")
    ap.add_argument("--small-reps", type=int, default=5, help="repetitions of the small set")
    ap.add_argument("--small", type=int, default=100_000)
    ap.add_argument("--large", type=int, default=200)
    ap.add_argument("--table", type=int, default=1_000_000, help="records of the table set")
    ap.add_argument("--table-reps", type=int, default=3)
    ap.add_argument("--dir", default=None, help="where the stores are written (default: $TMPDIR)")
    ap.add_argument("--only", choices=["all", "backends", "table"], default="all",
                    help="run the small and large sets, the table set, or all (default)")
    args = ap.parse_args()
    if args.only == "table":
        return print_table(args, *run_table(args.table, args.table_reps, args.dir))
    rng = np.random.default_rng(42)
    t0 = time.perf_counter()

    n = args.small
    keys = [bytes(row).hex() for row in rng.integers(0, 256, (n, 16), dtype=np.uint8)]
    values = [(float(a), float(b)) for a, b in rng.random((n, 2))]
    items = [{"i": i, "x": float(a)} for i, a in enumerate(rng.random(n))]
    few, some = min(n, 2_000), min(n, 20_000)
    small = [
        ("daskfarm", daskfarm_write, daskfarm_read, keys, values, BATCH),
        ("daskfarm, with items", partial(daskfarm_write, items=items), daskfarm_read, keys,
         values, BATCH),
        ("zict.File + Func(pickle)", zict_write, zict_read, keys[:few], values[:few], BATCH),
        ("sqlite3 WAL 1000/txn FULL", sqlite_write, sqlite_read, keys, values, BATCH),
        ("sqlite3 WAL 1000/txn NORMAL*", partial(sqlite_write, sync="NORMAL"), sqlite_read,
         keys, values, BATCH),
        ("shelve (dbm.dumb)", shelve_write, shelve_read, keys[:some], values[:some], BATCH),
        ("raw open().write()", raw_write, raw_read, keys, values, BATCH),
    ]
    print(f"small: {n:,} x (float, float), batches of {BATCH}, {args.small_reps} reps",
          file=sys.stderr)
    small_times = run(small, args.small_reps, args.dir)

    m = args.large
    arrays = [np.full(1_000_000, float(i)) + rng.random(1_000_000) for i in range(m)]
    akeys = [f"array-{i:04d}" for i in range(m)]
    part = min(m, 50)
    large = [
        ("zict.File + Func(pickle)", zict_write, zict_read, part),
        ("sqlite3 WAL 10/txn FULL", partial(sqlite_write, sync="FULL"), sqlite_read, part),
        ("shelve (dbm.dumb)", shelve_write, shelve_read, part),
    ]
    large = [(label, w, r, akeys[:k], arrays[:k], LARGE_BATCH) for label, w, r, k in large]
    print(f"large: {m} x float64[1,000,000] (8 MB), batches of {LARGE_BATCH}", file=sys.stderr)
    large_times = run_paired(akeys, arrays, args.reps, args.dir)
    large_times.update(run(large, args.reps, args.dir))
    del arrays

    stamp = time.strftime("%Y-%m-%d")
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"# python bench/store.py  ({stamp}, {os.cpu_count()} CPUs, load {load:.1f}, "
          f"{args.small_reps}/{args.reps} reps small/large, median (min-max), "
          f"{time.perf_counter() - t0:.0f} s)")
    table(f"Small: {n:,} results of (float, float), durable per {BATCH}; reads merge "
          f"{SHARDS} daskfarm shards", small_times, {c[0]: len(c[3]) for c in small})
    print("\n\\* synchronous=NORMAL in WAL mode does not fsync at commit: not durable per batch.")
    table(f"Large: {m} arrays of 8 MB, durable per {LARGE_BATCH}; daskfarm and raw files "
          "alternate batch by batch", large_times,
          {"daskfarm": m, "raw open().write()": m, **{c[0]: len(c[3]) for c in large}}, mb=8.0)

    def med(times, label, i):
        return statistics.median(times[label][i])

    print("\nRatios (daskfarm / other, medians; >1 means daskfarm is faster):")
    for title, times in [("small", small_times), ("large", large_times)]:
        for label in times:
            if not label.startswith("daskfarm"):
                w = med(times, "daskfarm", 0) / med(times, label, 0)
                r = med(times, "daskfarm", 1) / med(times, label, 1)
                print(f"  {title:<5} vs {label:<30} writes {w:6.2f}x   reads {r:6.2f}x")
    goals = [
        ("small writes >= 150,000/s, durable per batch", med(small_times, "daskfarm", 0), 150_000),
        ("small reads >= 1,000,000/s, merged over 8 shards", med(small_times, "daskfarm", 1),
         1_000_000),
        ("large writes >= 80% of raw file writes",
         med(large_times, "daskfarm", 0) / med(large_times, "raw open().write()", 0), 0.8),
    ]
    print("\nGoals:")
    for name, got, want in goals:
        shown = f"{got:.2f}" if want < 10 else f"{got:,.0f}"
        print(f"  {'PASS' if got >= want else 'MISS'}  {name}: {shown}")
    if args.only == "all":
        print_table(args, *run_table(args.table, args.table_reps, args.dir))


def print_table(args, write, times):
    n = args.table
    print(f"\nTable: {n:,} records (dict items, dict results) in {SHARDS} shards, written in "
          f"{write:.1f} s; {args.table_reps} reps, seconds, median (min-max)")
    print("| operation | seconds |")
    print("|---|---|")
    for name, values in times.items():
        print(f"| {name} | {statistics.median(values):.3f} ({min(values):.3f}-{max(values):.3f}) |")
    print("\nGoals:")
    for name, label, want in [("to_dataframe() <= 3 s", "to_dataframe()", 3.0),
                              ("find() of one value <= 0.5 s (first call)",
                               "find(i=v), first call", 0.5)]:
        got = statistics.median(times[label])
        print(f"  {'PASS' if got <= want else 'MISS'}  {name}: {got:.3f} s")


if __name__ == "__main__":
    main()
