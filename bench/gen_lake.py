#!/usr/bin/env python3
"""Generate a V6-like Delta lake for the lakevault benchmark (python3 standard library only).

    python3 bench/gen_lake.py --root PROJECT --size-mb 1024 [--small-files] [--seed N]
    python3 bench/gen_lake.py --root PROJECT --size-mb 1024 [--small-files] --grow
    python3 bench/gen_lake.py --root PROJECT --big-log 300000

Default mode writes PROJECT/data/lake/{position_updates,option_legs,strategy_executions,
account_snapshots}, each a Delta table partitioned by `date=YYYY-MM-DD/` with one JSON commit
per trading day (commit 0: protocol + metaData), plus PROJECT/config/production.yaml and
PROJECT/.env. Data files are named like Spark's (`part-00000-<uuid>.c000.snappy.parquet`) and
are about 1.2 MiB each (`--small-files`: ten times as many, ten times smaller). 80% of them hold
pseudo-random bytes (incompressible, like snappy-compressed Parquet pages), 20% repeated text
(compressible). Everything (names, bytes, sizes, mtimes, commits) is derived from --seed, so two
runs with the same arguments produce identical lakes.

--grow appends one new trading day (about 1% of the data) to every table as a new commit; run it
with the same --size-mb/--small-files/--seed as the generation.

--big-log N writes one table (PROJECT/data/lake/big_table) whose log has N live files, in commits
of --adds-per-commit (1000) adds each; the data files themselves are NOT written (only the JSON
commits), to time `lakevault check` on the log replay of a very large table. With --sparse they
are created as sparse files of the logged size (an inode each, no data blocks), so the table is
healthy and check also stats every file.
"""

import argparse
import datetime as dt
import hashlib
import json
import os
import random
import sys
import uuid

MIB = 1024 * 1024
# Share of the lake's bytes held by each table (the V6 layout: position updates dominate).
TABLES = [
    ("position_updates", 0.40),
    ("option_legs", 0.30),
    ("account_snapshots", 0.20),
    ("strategy_executions", 0.10),
]
SCHEMAS = {
    "position_updates": [("ts", "timestamp"), ("account", "string"), ("symbol", "string"),
                         ("quantity", "double"), ("avg_price", "double"), ("market_price", "double"),
                         ("unrealized_pnl", "double"), ("date", "date")],
    "option_legs": [("ts", "timestamp"), ("strategy_id", "string"), ("leg", "integer"),
                    ("underlying", "string"), ("expiry", "date"), ("strike", "double"),
                    ("right", "string"), ("quantity", "integer"), ("price", "double"),
                    ("delta", "double"), ("gamma", "double"), ("theta", "double"),
                    ("vega", "double"), ("iv", "double"), ("date", "date")],
    "account_snapshots": [("ts", "timestamp"), ("account", "string"),
                          ("net_liquidation", "double"), ("buying_power", "double"),
                          ("maintenance_margin", "double"), ("cash", "double"), ("date", "date")],
    "strategy_executions": [("ts", "timestamp"), ("strategy_id", "string"), ("strategy", "string"),
                            ("action", "string"), ("underlying", "string"), ("credit", "double"),
                            ("max_loss", "double"), ("status", "string"), ("date", "date")],
}
FIRST_DAY = dt.date(2026, 1, 5)  # a Monday
DEFAULT_DAYS = 100               # so one more trading day is about 1% of the data
FILE_BYTES = int(1.2 * MIB)
COMPRESSIBLE_SHARE = 0.20
SYMBOLS = ["SPY", "QQQ", "IWM", "AAPL", "MSFT", "NVDA", "AMZN", "TSLA", "META", "GOOGL", "XSP"]


def trading_days(start, n):
    """n weekdays from start (holidays are ignored: a benchmark needs only the cadence)."""
    days, d = [], start
    while len(days) < n:
        if d.weekday() < 5:
            days.append(d)
        d += dt.timedelta(days=1)
    return days


def next_trading_day(d):
    d += dt.timedelta(days=1)
    while d.weekday() >= 5:
        d += dt.timedelta(days=1)
    return d


def epoch_ms(d, hour=21, minute=0, second=0):
    t = dt.datetime(d.year, d.month, d.day, hour, minute, second, tzinfo=dt.timezone.utc)
    return int(t.timestamp() * 1000)


def schema_string(table):
    fields = [{"name": n, "type": t, "nullable": True, "metadata": {}} for n, t in SCHEMAS[table]]
    return json.dumps({"type": "struct", "fields": fields}, separators=(",", ":"))


def write_file(path, data, mtime_ms=None):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)
    if mtime_ms is not None:
        os.utime(path, (mtime_ms / 1000, mtime_ms / 1000))


def commit_path(table_dir, version):
    return os.path.join(table_dir, "_delta_log", "%020d.json" % version)


def write_commit(table_dir, version, actions, ts_ms):
    lines = "".join(json.dumps(a, separators=(",", ":")) + "\n" for a in actions)
    path = commit_path(table_dir, version)
    if os.path.exists(path):
        sys.exit("gen_lake: %s already exists" % path)
    write_file(path, lines.encode(), ts_ms)


def header_actions(table, rng, created_ms):
    return [
        {"commitInfo": {"timestamp": created_ms, "operation": "CREATE TABLE",
                        "operationParameters": {"partitionBy": "[\"date\"]"},
                        "isBlindAppend": True, "engineInfo": "lakevault-bench gen_lake.py"}},
        {"protocol": {"minReaderVersion": 1, "minWriterVersion": 2}},
        {"metaData": {"id": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
                      "format": {"provider": "parquet", "options": {}},
                      "schemaString": schema_string(table),
                      "partitionColumns": ["date"],
                      "configuration": {},
                      "createdTime": created_ms}},
    ]


def text_block(rng, day, nbytes):
    """Repeated text: CSV-like rows, compressible (gzip about 3-5x) like plain-encoded columns."""
    rows, size = [], 0
    while size < nbytes:
        row = "%sT%02d:%02d:%02d.%03dZ,%s,U%07d,%s,%.2f,%d,%.4f\n" % (
            day.isoformat(), rng.randrange(13, 21), rng.randrange(60), rng.randrange(60),
            rng.randrange(1000), rng.choice(SYMBOLS), rng.randrange(10000000),
            rng.choice(("BUY", "SELL")), rng.uniform(1, 600), rng.randrange(1, 200),
            rng.uniform(-1, 1))
        rows.append(row)
        size += len(row)
    return "".join(rows).encode()


def file_content(seed, table, day, index, size, compressible, rng):
    """size bytes framed like Parquet (PAR1 ... PAR1), unique to (seed, table, day, index)."""
    body = size - 8
    if compressible:
        block = text_block(rng, day, min(body, 64 * 1024))
        data = (block * (body // len(block) + 1))[:body]
    else:
        # shake_128 as a seeded stream: as incompressible as os.urandom, but reproducible, and
        # unique per file so restic/borg cannot deduplicate one file against another.
        key = ("%d/%s/%s/%d" % (seed, table, day.isoformat(), index)).encode()
        data = hashlib.shake_128(key).digest(body)
    return b"PAR1" + data + b"PAR1"


def day_plan(table_bytes, days, file_bytes):
    """Files per trading day and their mean size for one table."""
    per_day = table_bytes / days
    nfiles = max(1, round(per_day / file_bytes))
    return nfiles, per_day / nfiles


def write_day(root, table, version, day, nfiles, mean_size, seed, small):
    """Writes one trading day's files and its commit; returns bytes written."""
    table_dir = os.path.join(root, "data", "lake", table)
    rng = random.Random("%d/%s/%s/%d" % (seed, table, day.isoformat(), small))
    commit_ms = epoch_ms(day, 21, 5, rng.randrange(60))
    adds, total = [], 0
    for i in range(nfiles):
        size = max(64, int(mean_size * rng.uniform(0.9, 1.1)))
        compressible = rng.random() < COMPRESSIBLE_SHARE
        name = "part-%05d-%s.c000.snappy.parquet" % (i, uuid.UUID(int=rng.getrandbits(128), version=4))
        rel = "date=%s/%s" % (day.isoformat(), name)
        mtime = commit_ms - 1000 * (nfiles - i)
        write_file(os.path.join(table_dir, rel),
                   file_content(seed, table, day, i, size, compressible, rng), mtime)
        rows = size // (120 if compressible else 40)
        adds.append({"add": {"path": rel, "partitionValues": {"date": day.isoformat()},
                             "size": size, "modificationTime": mtime, "dataChange": True,
                             "stats": json.dumps({"numRecords": rows}, separators=(",", ":"))}})
        total += size
    info = {"commitInfo": {"timestamp": commit_ms, "operation": "WRITE",
                           "operationParameters": {"mode": "Append", "partitionBy": "[\"date\"]"},
                           "readVersion": version - 1, "isBlindAppend": True,
                           "operationMetrics": {"numFiles": str(nfiles), "numOutputBytes": str(total)},
                           "engineInfo": "lakevault-bench gen_lake.py"}}
    write_commit(table_dir, version, [info] + adds, commit_ms)
    return total, nfiles


def write_project_files(root):
    write_file(os.path.join(root, "config", "production.yaml"),
               b"# V6 trading system (benchmark copy)\n"
               b"broker: {host: 127.0.0.1, port: 4002, client_id: 7}\n"
               b"strategies: [iron_condor, wheel, put_credit_spread]\n"
               b"risk: {max_portfolio_delta: 250, max_loss_per_day: 5000}\n"
               b"lake: data/lake\n")
    write_file(os.path.join(root, ".env"),
               b"IB_ACCOUNT=DU0000000\nDASHBOARD_PASSWORD=bench-only\nTZ=America/New_York\n")
    os.chmod(os.path.join(root, ".env"), 0o600)


def table_sizes(args):
    total = args.size_mb * MIB
    return [(t, total * share) for t, share in TABLES]


def generate(args):
    lake = os.path.join(args.root, "data", "lake")
    if os.path.exists(lake) and os.listdir(lake):
        sys.exit("gen_lake: %s is not empty" % lake)
    file_bytes = FILE_BYTES / (10 if args.small_files else 1)
    days = trading_days(FIRST_DAY, args.days)
    total_bytes = total_files = 0
    for table, tbytes in table_sizes(args):
        table_dir = os.path.join(lake, table)
        rng = random.Random("%d/%s/meta" % (args.seed, table))
        created = epoch_ms(FIRST_DAY, 13, 0)
        write_commit(table_dir, 0, header_actions(table, rng, created), created)
        nfiles, mean = day_plan(tbytes, args.days, file_bytes)
        for v, day in enumerate(days, start=1):
            b, n = write_day(args.root, table, v, day, nfiles, mean, args.seed, args.small_files)
            total_bytes += b
            total_files += n
    write_project_files(args.root)
    print("gen_lake: %s: 4 tables, %d trading days, %d data files, %.1f MiB"
          % (lake, args.days, total_files, total_bytes / MIB))


def latest_version(table_dir):
    versions = [int(n[:20]) for n in os.listdir(os.path.join(table_dir, "_delta_log"))
                if n.endswith(".json") and n[:20].isdigit()]
    return max(versions)


def grow(args):
    lake = os.path.join(args.root, "data", "lake")
    file_bytes = FILE_BYTES / (10 if args.small_files else 1)
    total_bytes = total_files = 0
    for table, tbytes in table_sizes(args):
        table_dir = os.path.join(lake, table)
        if not os.path.isdir(os.path.join(table_dir, "_delta_log")):
            sys.exit("gen_lake: --grow: no table at %s (generate the lake first)" % table_dir)
        last = max(dt.date.fromisoformat(n[5:]) for n in os.listdir(table_dir)
                   if n.startswith("date="))
        nfiles, mean = day_plan(tbytes, args.days, file_bytes)
        version = latest_version(table_dir) + 1
        day = next_trading_day(last)
        b, n = write_day(args.root, table, version, day, nfiles, mean, args.seed, args.small_files)
        total_bytes += b
        total_files += n
    print("gen_lake: grew %s by one trading day (%s): %d files, %.1f MiB"
          % (lake, day.isoformat(), total_files, total_bytes / MIB))


def spark_stats(nrec, day, rng):
    """A stats string shaped like Spark's for position_updates (the part that costs to parse)."""
    d = day.isoformat()
    lo = lambda: round(rng.uniform(-500, 0), 4)
    hi = lambda: round(rng.uniform(0, 500), 4)
    return json.dumps({
        "numRecords": nrec,
        "minValues": {"ts": d + "T13:00:00.123Z", "account": "U%07d" % rng.randrange(10**6),
                      "symbol": "AAPL", "quantity": lo(), "avg_price": lo(), "market_price": lo(),
                      "unrealized_pnl": lo()},
        "maxValues": {"ts": d + "T20:59:59.987Z", "account": "U%07d" % rng.randrange(10**6, 10**7),
                      "symbol": "XOM", "quantity": hi(), "avg_price": hi(), "market_price": hi(),
                      "unrealized_pnl": hi()},
        "nullCount": {"ts": 0, "account": 0, "symbol": 0, "quantity": 0, "avg_price": 0,
                      "market_price": rng.randrange(3), "unrealized_pnl": 0}},
        separators=(",", ":"))


def big_log(args):
    table = "big_table"
    table_dir = os.path.join(args.root, "data", "lake", table)
    if os.path.exists(table_dir):
        sys.exit("gen_lake: %s exists" % table_dir)
    rng = random.Random("%d/big" % args.seed)
    created = epoch_ms(FIRST_DAY, 13, 0)
    header = header_actions("position_updates", rng, created)
    write_commit(table_dir, 0, header, created)
    per = args.adds_per_commit
    ncommits = (args.big_log + per - 1) // per
    days = trading_days(FIRST_DAY, ncommits)
    written = 0
    for v, day in enumerate(days, start=1):
        ts = epoch_ms(day, 21, 5)
        n = min(per, args.big_log - written)
        lines = [json.dumps({"commitInfo": {"timestamp": ts, "operation": "WRITE",
                                            "readVersion": v - 1, "isBlindAppend": True}},
                            separators=(",", ":"))]
        for i in range(n):
            rel = "date=%s/part-%05d-%s.c000.snappy.parquet" % (
                day.isoformat(), i, uuid.UUID(int=rng.getrandbits(128), version=4))
            nrec = rng.randrange(10000, 40000)
            stats = spark_stats(nrec, day, rng) if args.spark_stats else '{"numRecords":%d}' % nrec
            size = args.data_bytes or rng.randrange(1000000, 1400000)
            lines.append(json.dumps(
                {"add": {"path": rel, "partitionValues": {"date": day.isoformat()},
                         "size": size, "modificationTime": ts - i,
                         "dataChange": True, "stats": stats}}, separators=(",", ":")))
            if args.data_bytes:
                # Real bytes, small: a backup of the whole table reads and stores every file.
                write_file(os.path.join(table_dir, rel), os.urandom(size), ts - i)
            elif args.sparse:
                # A hole of the logged size: the file exists with the right size, no data blocks.
                path = os.path.join(table_dir, rel)
                os.makedirs(os.path.dirname(path), exist_ok=True)
                with open(path, "wb") as f:
                    f.truncate(size)
        write_file(commit_path(table_dir, v), ("\n".join(lines) + "\n").encode(), ts)
        written += n
    print("gen_lake: %s: %d commits, %d live files in the log (%s)"
          % (table_dir, ncommits, written,
             "data files of %d random bytes" % args.data_bytes if args.data_bytes else
             "data files sparse: right size, no data" if args.sparse else "data files not written"))


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--root", required=True, help="project root (the lake goes in ROOT/data/lake)")
    p.add_argument("--size-mb", type=float, default=1024, help="lake size in MiB (default 1024)")
    p.add_argument("--small-files", action="store_true", help="10x more files, 10x smaller")
    p.add_argument("--grow", action="store_true", help="add one trading day to every table")
    p.add_argument("--days", type=int, default=DEFAULT_DAYS, help="trading days (default 100)")
    p.add_argument("--seed", type=int, default=6, help="seed (default 6)")
    p.add_argument("--big-log", type=int, metavar="N", help="one table with N live files, log only")
    p.add_argument("--sparse", action="store_true",
                   help="with --big-log: create the data files as sparse files of the logged size")
    p.add_argument("--data-bytes", type=int, default=0, metavar="N",
                   help="with --big-log: write every data file with N random bytes (logged size N)")
    p.add_argument("--spark-stats", action="store_true",
                   help="with --big-log: stats with min/max/null counts per column, as Spark writes")
    p.add_argument("--adds-per-commit", type=int, default=1000, help="with --big-log (1000)")
    args = p.parse_args()
    if args.size_mb <= 0 or args.days <= 0 or args.adds_per_commit <= 0:
        p.error("--size-mb, --days and --adds-per-commit must be positive")
    if args.big_log is not None:
        if args.big_log <= 0:
            p.error("--big-log N needs N > 0")
        big_log(args)
    elif args.grow:
        grow(args)
    else:
        generate(args)


if __name__ == "__main__":
    main()
