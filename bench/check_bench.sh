#!/usr/bin/env bash
# `lakevault check` on one table with many live files (issue 8: 300,000 files in under 2 s), first
# replayed from JSON commits only, then from a Parquet checkpoint of the same version.
#
#   bench/check_bench.sh            # 300 commits x 1000 adds, Spark-like stats, sparse data files
#
# Knobs (environment):
#   CHECK_BENCH_FILES   live files (default 300000)
#   CHECK_BENCH_PER     adds per commit (default 1000)
#   CHECK_BENCH_REPEAT  timed runs per variant; the median is reported (default 3)
#   CHECK_BENCH_DIR     scratch folder (default bench/out/check-work); the table is kept and reused
#                       while its file count matches, delete it to regenerate
#   LAKEVAULT_BIN       the binary (default build/lakevault)
# The checkpoint is written by DuckDB (npm @duckdb/node-api, installed into the scratch folder):
# Debian 12 packages no Parquet writer (no pyarrow, no duckdb). Without npm the checkpoint variant
# is skipped, and said so.
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
bin=${LAKEVAULT_BIN:-$top/build/lakevault}
files=${CHECK_BENCH_FILES:-300000}
per=${CHECK_BENCH_PER:-1000}
repeat=${CHECK_BENCH_REPEAT:-3}
work=${CHECK_BENCH_DIR:-$top/bench/out/check-work}
duckdb_pkg="@duckdb/node-api@1.5.6-r.1"

log() { printf 'check_bench: %s\n' "$*" >&2; }
die() { log "$*"; exit 1; }
[ -x "$bin" ] || die "no binary at $bin (build first)"
[ -x /usr/bin/time ] || die "/usr/bin/time is missing (Debian package time)"
mkdir -p "$work"
work=$(cd "$work" && pwd)
lake="$work/project/data/lake"
table="$lake/big_table"

if [ "$(cat "$work/files" 2>/dev/null)" != "$files/$per" ]; then
  rm -rf "$work/project" "$work/files"
  log "generating $files live files ($per per commit, sparse data files)"
  python3 "$top/bench/gen_lake.py" --root "$work/project" --big-log "$files" \
    --adds-per-commit "$per" --sparse --spark-stats >&2
  echo "$files/$per" >"$work/files"
fi
# Warm cache: the figure is the CPU cost of the check, not the disk's.
cat "$table"/_delta_log/* >/dev/null
find "$table" -type f >/dev/null

# Runs check CHECK_BENCH_REPEAT times; prints "wall_s max_rss_mb" of the median run.
measure() {
  local label=$1 i
  : >"$work/runs.tsv"
  for ((i = 0; i < repeat; i++)); do
    /usr/bin/time -v -o "$work/time.txt" "$bin" check --lake "$lake" --json >"$work/report.json" ||
      die "$label: check failed: $(head -c 600 "$work/report.json")"
    python3 - "$work/time.txt" "$work/report.json" "$files" >>"$work/runs.tsv" <<'EOF'
import json, re, sys
t = open(sys.argv[1]).read()
m = re.search(r"Elapsed \(wall clock\) time.*: (?:(\d+):)?(\d+):([\d.]+)", t)
wall = int(m.group(1) or 0) * 3600 + int(m.group(2)) * 60 + float(m.group(3))
rss = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", t).group(1)) / 1024
rep = json.load(open(sys.argv[2]))["tables"][0]
if rep["live_files"] != int(sys.argv[3]) or not rep["healthy"]:
    sys.exit("unexpected report: %d live files, healthy=%s" % (rep["live_files"], rep["healthy"]))
print("%.2f\t%.0f\t%s" % (wall, rss, rep["rows"]))
EOF
  done
  sort -n "$work/runs.tsv" | sed -n "$(((repeat + 1) / 2))p" |
    awk -v l="$label" -v f="$files" '{printf "%-34s %8d files  wall %6.2f s  max RSS %5d MB  rows %s\n", l, f, $1, $2, $3}'
}

# Backup planning loads the same snapshot, then stats every file it will take: timed once per
# variant for information (the target of issue 8 is the check).
printf 'lake: data/lake\nfiles: []\nlogs: {include: false, path: logs/}\nbackup_path: backups/\nlog_file: ""\n' \
  >"$work/project/lakevault.yaml"
plan() {
  (cd "$work/project" && /usr/bin/time -f "%e %M" -o "$work/plan.txt" "$bin" backup --dry-run \
    --snapshot-only >/dev/null) || die "$1: backup --dry-run failed"
  awk -v l="$1" '{printf "%-34s backup --dry-run --snapshot-only: wall %6.2f s  max RSS %5d MB\n", l, $1, $2 / 1024}' \
    "$work/plan.txt"
}

cmd="$bin check --lake $lake --json"
log "timing: /usr/bin/time -v $cmd (median of $repeat)"
rm -f "$table"/_delta_log/*.checkpoint.parquet "$table/_delta_log/_last_checkpoint"
measure "json commits only"
plan "json commits only"

if command -v npm >/dev/null && command -v node >/dev/null; then
  if [ ! -d "$work/npm/node_modules/@duckdb/node-api" ]; then
    log "installing $duckdb_pkg (the Parquet writer for the checkpoint) into $work/npm"
    npm install --silent --no-audit --no-fund --prefix "$work/npm" "$duckdb_pkg" >&2
  fi
  # ESM resolves packages from the script's folder upwards, so the script runs from the scratch.
  cp "$top/bench/write_checkpoint.mjs" "$work/npm/"
  node "$work/npm/write_checkpoint.mjs" "$table" >&2
  cat "$table"/_delta_log/*.checkpoint.parquet >/dev/null
  measure "checkpoint (DuckDB-written Parquet)"
  plan "checkpoint (DuckDB-written Parquet)"
else
  log "no node/npm: the checkpoint variant is skipped (no other Parquet writer on Debian 12)"
fi
