#!/usr/bin/env bash
# lakevault benchmark (`make bench`): lakevault against tar/gzip/pigz/zstd, restic and borg on
# one generated V6-like Delta lake, warm cache, each operation timed with /usr/bin/time.
#
# Knobs (environment):
#   BENCH_SIZE_MB   lake size in MiB (default 1024)
#   BENCH_SCALING   1: also run 256 and 512 MiB and a small-files variant (default 0)
#   BENCH_DIR       scratch folder (default bench/out/work); wiped per variant
#   BENCH_BIG_LOG   live files of the big-log table timed with `lakevault check` (default 300000; 0 skips)
#   BENCH_BIG_LOG_SPARSE 1: create the big-log data files as sparse files, a healthy table whose
#                   files check also stats (default 1); 0: no data files, all reported missing
#   BENCH_REPEAT    run every variant N times; the report shows the median wall time (default 1)
#   BENCH_KEEP      1: keep each variant's scratch folder after its run (default 0)
#   LAKEVAULT_BIN   the binary (default build/lakevault)
# Results: bench/out/results.md (also printed), bench/out/results.json, raw rows in bench/out/raw.tsv.
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
bench="$top/bench"
bin=${LAKEVAULT_BIN:-$top/build/lakevault}
size_mb=${BENCH_SIZE_MB:-1024}
scaling=${BENCH_SCALING:-0}
big_log=${BENCH_BIG_LOG:-300000}
big_log_sparse=${BENCH_BIG_LOG_SPARSE:-1}
keep=${BENCH_KEEP:-0}
repeat=${BENCH_REPEAT:-1}
out="$top/bench/out"
work=${BENCH_DIR:-$out/work}
mkdir -p "$out" "$work"
work=$(cd "$work" && pwd)
raw="$out/raw.tsv"

log() { printf '\033[1mbench:\033[0m %s\n' "$*" >&2; }
die() { echo "bench: $*" >&2; exit 1; }
[[ "$repeat" =~ ^[1-9][0-9]*$ ]] || die "BENCH_REPEAT must be a positive integer"
[[ "$size_mb" =~ ^[0-9]+$ ]] && [ "$size_mb" -gt 0 ] || die "BENCH_SIZE_MB must be a positive integer"
[[ "$big_log" =~ ^[0-9]+$ ]] || die "BENCH_BIG_LOG must be a non-negative integer"

# --- packages: apt-get only for what is missing (as root; no sudo) ---------------------------
need_pkgs() {
  local missing=() p
  for p in restic borgbackup pigz zstd time python3 tar gzip coreutils; do
    dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -q '^install ok installed' || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  [ "$(id -u)" = 0 ] || die "missing Debian packages: ${missing[*]} (run as root to install them)"
  log "installing Debian packages: ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}
need_pkgs
for c in restic borg pigz zstd tar sha256sum python3 /usr/bin/time; do
  command -v "$c" >/dev/null || die "$c not found"
done
[ -x "$bin" ] || die "$bin not found (run \`make build\` or \`make bench\`)"

# --- timing ------------------------------------------------------------------------------------
# run_timed CMD...: runs CMD under /usr/bin/time; sets T_WALL (s), T_RSS (KB), T_RC, T_ERR (first
# stderr line). CMD's stdout goes to $T_OUT, stderr to $T_ERRF. Never aborts the script.
# Every command starts with no dirty pages: without the sync, the one timed after a tool that does
# not fsync (tar, the generator) would pay for writing back that tool's output.
run_timed() {
  local tf="$vwork/.time"
  T_OUT="$vwork/.stdout"
  T_ERRF="$vwork/.stderr"
  sync
  if /usr/bin/time -f '%e %M' -o "$tf" "$@" >"$T_OUT" 2>"$T_ERRF"; then T_RC=0; else T_RC=$?; fi
  # On failure time writes "Command exited with non-zero status N" before the figures.
  read -r T_WALL T_RSS < <(tail -n 1 "$tf")
  T_ERR=$(grep -v '^\s*$' "$T_ERRF" | head -n 1 | tr '\t' ' ' | cut -c1-160 || true)
}

# record KEY LABEL OUTPUT_BYTES [NOTE]: one row of raw.tsv for the current variant.
record() {
  local key=$1 label=$2 bytes=${3:-} note=${4:-}
  local status=ok
  if [ "$T_RC" != 0 ]; then
    status=FAILED
    note="exit $T_RC: ${T_ERR:-no stderr}"
    bytes=
  fi
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$variant" "$key" "$label" "$T_WALL" "$T_RSS" \
    "$bytes" "$status" "$lake_bytes" "$note" >>"$raw"
  if [ "$status" = ok ]; then
    log "$(printf '%-44s %8ss %8s KB RSS' "$label" "$T_WALL" "$T_RSS")"
  else
    log "$(printf '%-44s FAILED: %s' "$label" "$note")"
  fi
}

# time_and_record KEY LABEL OUTPUT_PATH CMD...: output size is du -sb of OUTPUT_PATH ('-': none).
time_and_record() {
  local key=$1 label=$2 path=$3
  shift 3
  run_timed "$@"
  local bytes=
  [ "$path" != - ] && [ -e "$path" ] && bytes=$(du -sb "$path" | cut -f1)
  record "$key" "$label" "$bytes"
}

dir_bytes() { if [ -e "$1" ]; then du -sb "$1" | cut -f1; else echo 0; fi; }
warm_cache() { find "$@" -type f -print0 | xargs -0 -r cat >/dev/null; }
json_field() { python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])' "$1" "$2"; }

# --- one variant: generate, then every operation on the same lake ------------------------------
run_variant() {
  variant=$1
  local mb=$2 small=$3
  local gen_flags=(--size-mb "$mb")
  [ "$small" = 1 ] && gen_flags+=(--small-files)
  vwork="$work/$variant"
  rm -rf "$vwork"
  mkdir -p "$vwork"
  local proj="$vwork/project" res="$vwork/results"
  mkdir -p "$proj" "$res"
  log "== variant $variant: generating a ${mb} MiB lake$([ "$small" = 1 ] && echo ' (small files)') in $proj"
  python3 "$bench/gen_lake.py" --root "$proj" "${gen_flags[@]}" >&2
  lake_bytes=$(dir_bytes "$proj/data/lake")
  local files
  files=$(find "$proj/data/lake" -type f | wc -l)
  printf '%s\t%s\t%s\t%s\t%s\n' "$variant" "$mb" "$small" "$lake_bytes" "$files" >>"$out/variants.tsv"
  local src=(data/lake config .env)
  warm_cache "$proj"

  # lakevault full backups (gzip into backups/, zstd into its own folder so the incremental's
  # parent is the gzip full).
  cd "$proj"
  export LAKEVAULT_NOW=2026-11-24T17:00:00Z
  run_timed "$bin" backup --full --compress gzip --json --no-prune
  local lv_gz=
  [ "$T_RC" = 0 ] && lv_gz=$(json_field "$T_OUT" archive)
  record lv_full_gzip "lakevault backup --full (gzip)" "$([ -n "$lv_gz" ] && stat -c %s "$lv_gz")"
  export LAKEVAULT_NOW=2026-11-24T17:10:00Z
  run_timed "$bin" backup --full --compress zstd --path backups-zstd --json --no-prune
  record lv_full_zstd "lakevault backup --full --compress zstd" \
    "$([ "$T_RC" = 0 ] && json_field "$T_OUT" archive_bytes)"

  # Baselines: the same folders with tar and friends.
  time_and_record tar_czf "tar -czf" "$res/lake.tar.gz" tar -C "$proj" -czf "$res/lake.tar.gz" "${src[@]}"
  time_and_record tar_pigz "tar -cf - | pigz" "$res/lake.pigz.tar.gz" \
    bash -c 'set -o pipefail; tar -C "$1" -cf - data/lake config .env | pigz >"$2"' _ "$proj" "$res/lake.pigz.tar.gz"
  time_and_record tar_zstd "tar -cf - | zstd -T2 -3" "$res/lake.tar.zst" \
    bash -c 'set -o pipefail; tar -C "$1" -cf - data/lake config .env | zstd -q -T2 -3 -o "$2"' _ "$proj" "$res/lake.tar.zst"
  time_and_record tar_cf "tar -cf (no compression)" "$res/lake.tar" tar -C "$proj" -cf "$res/lake.tar" "${src[@]}"
  rm -f "$res/lake.tar"

  # restic and borg, self-contained (caches and keys under the variant's folder).
  export RESTIC_PASSWORD=bench RESTIC_REPOSITORY="$vwork/restic" RESTIC_CACHE_DIR="$vwork/restic-cache"
  export BORG_PASSPHRASE=bench BORG_REPO="$vwork/borg" BORG_BASE_DIR="$vwork/borg-home" BORG_DISPLAY_PASSPHRASE=no
  time_and_record restic_init "restic init" "$vwork/restic" restic init -q
  local before
  before=$(dir_bytes "$vwork/restic")
  run_timed restic backup -q "${src[@]}"
  record restic_backup "restic backup" "$(($(dir_bytes "$vwork/restic") - before))"
  time_and_record borg_init "borg init --encryption=repokey" "$vwork/borg" borg init --encryption=repokey
  before=$(dir_bytes "$vwork/borg")
  run_timed borg create --compression lz4 ::full "${src[@]}"
  record borg_create "borg create --compression lz4" "$(($(dir_bytes "$vwork/borg") - before))"

  # Verification of the full backup.
  if [ -n "$lv_gz" ]; then
    time_and_record lv_verify "lakevault verify latest" - "$bin" verify latest
    time_and_record sha256 "sha256sum of the gzip archive" - sha256sum "$lv_gz"
  else
    T_RC=1 T_WALL= T_RSS= T_ERR="no lakevault gzip backup to verify"
    record lv_verify "lakevault verify latest" ""
  fi
  time_and_record restic_check "restic check --read-data" - restic check -q --read-data
  time_and_record borg_check "borg check --verify-data" - borg check --verify-data
  time_and_record lv_check "lakevault check --json" - "$bin" check --lake data/lake --json

  # Restores of the full backup into empty folders.
  local restored="$vwork/restore-lakevault" restored_bytes=
  run_timed "$bin" restore latest --to "$restored"
  if [ "$T_RC" = 0 ]; then
    restored_bytes=$(dir_bytes "$restored")
    # Not timed: the restored lake must equal the source, or the row is FAILED.
    local restored_lake="$restored"
    [ -d "$restored/data/lake" ] && restored_lake="$restored/data/lake"
    if ! diff -rq "$proj/data/lake" "$restored_lake" >"$vwork/.diff" 2>&1; then
      T_RC=1 T_ERR="restored tree differs from the lake: $(head -n 1 "$vwork/.diff")"
    fi
  fi
  record lv_restore "lakevault restore latest --to" "$restored_bytes"
  rm -rf "$restored"
  if [ -n "$lv_gz" ]; then
    mkdir -p "$vwork/restore-tar"
    time_and_record tar_xzf "tar -xzf (lakevault gzip archive)" "$vwork/restore-tar" \
      tar -xzf "$lv_gz" -C "$vwork/restore-tar"
    rm -rf "$vwork/restore-tar"
  fi
  time_and_record restic_restore "restic restore latest --target" "$vwork/restore-restic" \
    restic restore -q latest --target "$vwork/restore-restic"
  rm -rf "$vwork/restore-restic"
  mkdir -p "$vwork/restore-borg"
  time_and_record borg_extract "borg extract" "$vwork/restore-borg" \
    bash -c 'cd "$1" && borg extract ::full' _ "$vwork/restore-borg"
  rm -rf "$vwork/restore-borg"

  # One more trading day, then the incrementals.
  python3 "$bench/gen_lake.py" --root "$proj" "${gen_flags[@]}" --grow >&2
  warm_cache "$proj/data/lake"
  export LAKEVAULT_NOW=2026-11-25T17:00:00Z
  run_timed "$bin" backup --incremental --json --no-prune
  record lv_incr "lakevault backup --incremental (after grow)" \
    "$([ "$T_RC" = 0 ] && json_field "$T_OUT" archive_bytes)"
  before=$(dir_bytes "$vwork/restic")
  run_timed restic backup -q "${src[@]}"
  record restic_incr "restic backup (after grow)" "$(($(dir_bytes "$vwork/restic") - before))"
  before=$(dir_bytes "$vwork/borg")
  run_timed borg create --compression lz4 ::grow "${src[@]}"
  record borg_incr "borg create (after grow)" "$(($(dir_bytes "$vwork/borg") - before))"
  unset LAKEVAULT_NOW
  cd "$top"
  [ "$keep" = 1 ] || rm -rf "$vwork"
}

# --- the big log: `lakevault check` on a table with BENCH_BIG_LOG live files ------------------
run_big_log() {
  variant="big-log"
  vwork="$work/big-log"
  rm -rf "$vwork"
  mkdir -p "$vwork"
  local sparse=()
  [ "$big_log_sparse" = 1 ] && sparse=(--sparse)
  log "== big log: one table with $big_log live files"
  python3 "$bench/gen_lake.py" --root "$vwork/project" --big-log "$big_log" "${sparse[@]}" >&2
  lake_bytes=$(dir_bytes "$vwork/project/data/lake/big_table/_delta_log")
  printf '%s\t%s\t%s\t%s\t%s\n' "$variant" 0 "$big_log_sparse" "$lake_bytes" "$big_log" >>"$out/variants.tsv"
  warm_cache "$vwork/project/data/lake/big_table/_delta_log"
  [ "$big_log_sparse" = 1 ] && find "$vwork/project/data/lake" -type f >/dev/null  # warm the inodes
  run_timed "$bin" check --lake "$vwork/project/data/lake" --json
  # Without BENCH_BIG_LOG_SPARSE the data files are not written, so check reports them missing and
  # exits 1: that is expected. It counts as a success when the report names exactly BENCH_BIG_LOG
  # live files (and, with sparse files, when check also exits 0).
  local live
  live=$(python3 -c 'import json,sys; print(sum(t["live_files"] for t in json.load(open(sys.argv[1]))["tables"]))' \
    "$T_OUT" 2>/dev/null || echo 0)
  local note="log replay of $big_log live files; data files absent by design"
  [ "$big_log_sparse" = 1 ] && note="log replay and stat of $big_log live (sparse) files"
  if [ "$live" = "$big_log" ] && { [ "$big_log_sparse" != 1 ] || [ "$T_RC" = 0 ]; }; then
    T_RC=0
  elif [ "$T_RC" = 0 ]; then
    T_RC=1 T_ERR="report has $live live files, expected $big_log"
  fi
  record lv_check_big "lakevault check --json ($big_log live files)" "" "$note"
  [ "$keep" = 1 ] || rm -rf "$vwork"
}

# --- main ---------------------------------------------------------------------------------------
rm -f "$raw" "$out/variants.tsv"
printf 'variant\tkey\toperation\twall_s\tpeak_rss_kb\toutput_bytes\tstatus\tlake_bytes\tnote\n' >"$raw"
printf 'variant\tsize_mb\tsmall_files\tlake_bytes\tfiles\n' >"$out/variants.tsv"
log "lakevault $("$bin" --version 2>/dev/null || echo '?'); $(nproc) CPUs; $(restic version | cut -d' ' -f1-2); $(borg --version)"
export BENCH_LOAD_START BENCH_LOAD_END BENCH_TOOLS
BENCH_LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)
BENCH_TOOLS="$(restic version | cut -d' ' -f1-2), $(borg --version), $(tar --version | head -n 1), pigz $(pigz --version 2>&1 | cut -d' ' -f2), zstd $(zstd --version | grep -o 'v[0-9.]*' | head -n 1)"
for ((rep = 1; rep <= repeat; rep++)); do
  [ "$repeat" -gt 1 ] && log "=== run $rep of $repeat"
  run_variant "${size_mb}MiB" "$size_mb" 0
  if [ "$scaling" = 1 ]; then
    for mb in 256 512; do
      [ "$mb" = "$size_mb" ] || run_variant "${mb}MiB" "$mb" 0
    done
    run_variant "${size_mb}MiB-small-files" "$size_mb" 1
  fi
  if [ "$big_log" -gt 0 ]; then run_big_log; fi
done
BENCH_LOAD_END=$(cut -d' ' -f1-3 /proc/loadavg)

# --- report: markdown + JSON + ratios, all computed from raw.tsv ------------------------------
python3 - "$raw" "$out/variants.tsv" "$out/results.md" "$out/results.json" "$size_mb" <<'PY'
import csv, json, os, platform, subprocess, sys, datetime

raw_path, var_path, md_path, json_path, main_mb = sys.argv[1:6]
MIB = 1024 * 1024
runs = list(csv.DictReader(open(raw_path), delimiter="\t"))
variants = []
for v in csv.DictReader(open(var_path), delimiter="\t"):
    if v["variant"] not in [x["variant"] for x in variants]:
        variants.append(v)

def num(s):
    try:
        return float(s)
    except (TypeError, ValueError):
        return None

def median(xs):
    xs = sorted(x for x in xs if x is not None)
    if not xs:
        return None
    n = len(xs)
    return xs[n // 2] if n % 2 else (xs[n // 2 - 1] + xs[n // 2]) / 2

# With BENCH_REPEAT > 1 each (variant, operation) has several runs: the row shows the median wall
# time and output, the largest peak RSS, and FAILED when any run failed.
groups = {}
for r in runs:
    groups.setdefault((r["variant"], r["key"]), []).append(r)
rows = []
for (variant, key), rs in groups.items():
    failed = [r for r in rs if r["status"] != "ok"]
    r = dict(failed[0] if failed else rs[0])
    walls = [num(x["wall_s"]) for x in rs]
    r["runs_wall_s"] = walls
    r["wall_s"] = None if failed else median(walls)
    rss = [num(x["peak_rss_kb"]) for x in rs if num(x["peak_rss_kb"]) is not None]
    r["peak_rss_kb"] = max(rss) if rss and not failed else None
    r["output_bytes"] = None if failed else median([num(x["output_bytes"]) for x in rs])
    r["lake_bytes"] = num(r["lake_bytes"])
    rows.append(r)
nruns = max((len(v) for v in groups.values()), default=1)

for r in rows:
    ok = r["status"] == "ok"
    r["mb_per_s"] = (r["lake_bytes"] / MIB / r["wall_s"]) if ok and r["wall_s"] else None
    r["peak_rss_mb"] = r["peak_rss_kb"] / 1024 if ok and r["peak_rss_kb"] is not None else None
    r["output_mb"] = r["output_bytes"] / MIB if ok and r["output_bytes"] is not None else None

def get(variant, key):
    for r in rows:
        if r["variant"] == variant and r["key"] == key and r["status"] == "ok":
            return r
    return None

def fmt(x, nd=2):
    return "-" if x is None else f"{x:.{nd}f}"

def fx(x):
    return "n/a" if x is None else f"{x:.2f}x"

def secs(r):
    return "FAILED/absent" if r is None else f"{r['wall_s']:.2f} s"

def ratio_line(desc, a, b, what):
    """a / b for the figure `what` of two rows, None when either is missing."""
    if a is None or b is None or not a.get(what) or not b.get(what):
        return desc, None
    return desc, a[what] / b[what]

ratios = {}
md = []
host = f"{platform.node()}: {os.cpu_count()} CPUs, Linux {platform.release()}"
load = f"load average {os.environ.get('BENCH_LOAD_START', '?')} at the start, {os.environ.get('BENCH_LOAD_END', '?')} at the end"
tools = os.environ.get("BENCH_TOOLS", "")
md.append(f"# lakevault benchmark ({datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC)")
md.append("")
md.append(f"Host {host}; {load}. {tools}.")
md.append("")
md.append("Warm page cache, `sync` before each command; wall time and peak RSS from `/usr/bin/time -f '%e %M'`"
          + (f", median wall time of {nruns} runs (largest peak RSS)" if nruns > 1 else ", one run")
          + "; MB = MiB; MB/s = lake size / wall time; output = archive, repository growth or restored tree.")
for v in variants:
    name = v["variant"]
    vrows = [r for r in rows if r["variant"] == name]
    if not vrows:
        continue
    lake_mb = float(v["lake_bytes"]) / MIB
    md.append("")
    if name == "big-log":
        md.append(f"## big log: one table with {v['files']} live files in its log "
                  f"({lake_mb:.1f} MB of JSON commits)")
    else:
        md.append(f"## {name}: lake {lake_mb:.1f} MB in {v['files']} files"
                  + (" (small files)" if v["small_files"] == "1" else ""))
    md.append("")
    md.append("| operation | wall s | MB/s | peak RSS MB | output MB | notes |")
    md.append("|---|---:|---:|---:|---:|---|")
    for r in vrows:
        op = r["operation"].replace("|", "\\|")
        note = r["note"].replace("|", "\\|")
        if r["status"] != "ok":
            md.append(f"| {op} | FAILED | - | - | - | {note} |")
        else:
            mbs = "-" if name == "big-log" or r["key"].endswith("_init") else fmt(r["mb_per_s"], 1)
            md.append(f"| {op} | {fmt(r['wall_s'])} | {mbs} | {fmt(r['peak_rss_mb'], 1)} "
                      f"| {fmt(r['output_mb'], 1)} | {note} |")
    # Ratios.
    lines = []
    g = lambda k: get(name, k)
    lv = g("lv_full_gzip")
    if name != "big-log":
        for other, label in [("tar_czf", "tar -czf"), ("restic_backup", "restic backup"),
                             ("borg_create", "borg create --compression lz4"),
                             ("tar_cf", "tar -cf"), ("tar_pigz", "tar | pigz"),
                             ("tar_zstd", "tar | zstd -T2 -3")]:
            _, sp = ratio_line("", g(other), lv, "wall_s")
            _, sz = ratio_line("", lv, g(other), "output_bytes")
            ratios[f"{name}/lv_full_gzip_vs_{other}"] = {"speedup": sp, "size_ratio": sz}
            lines.append(f"- lakevault gzip backup vs {label}: "
                         f"{fx(sp)} as fast ({secs(lv)} vs {secs(g(other))}), "
                         f"archive {fx(sz)} the size")
        _, r = ratio_line("", g("lv_incr"), lv, "wall_s")
        ratios[f"{name}/lv_incr_over_full"] = r
        lines.append(f"- lakevault incremental after grow / full backup time: "
                     f"{'n/a' if r is None else f'{r:.3f}'} ({secs(g('lv_incr'))} vs {secs(lv)})")
        rs = g("lv_restore")
        for other, label in [("tar_xzf", "tar -xzf"), ("restic_restore", "restic restore"),
                             ("borg_extract", "borg extract")]:
            _, sp = ratio_line("", g(other), rs, "wall_s")
            ratios[f"{name}/lv_restore_vs_{other}"] = sp
            lines.append(f"- lakevault restore vs {label}: {fx(sp)} as fast "
                         f"({secs(rs)} vs {secs(g(other))})")
        vf = g("lv_verify")
        for other, label in [("restic_check", "restic check --read-data"),
                             ("borg_check", "borg check --verify-data"),
                             ("sha256", "sha256sum of the archive")]:
            _, sp = ratio_line("", g(other), vf, "wall_s")
            ratios[f"{name}/lv_verify_vs_{other}"] = sp
            lines.append(f"- lakevault verify vs {label}: {fx(sp)} as fast "
                         f"({secs(vf)} vs {secs(g(other))})")
    lvrows = [r for r in vrows if r["key"].startswith("lv_") and r["status"] == "ok"
              and r["peak_rss_kb"] is not None]
    if lvrows:
        top = max(lvrows, key=lambda r: r["peak_rss_kb"])
        within = top["peak_rss_kb"] * 1024 <= 64 * MIB
        ratios[f"{name}/lv_peak_rss_mb"] = {"mb": top["peak_rss_mb"], "operation": top["operation"],
                                            "vs_64mib": top["peak_rss_mb"] / 64, "within": within}
        lines.append(f"- lakevault peak RSS: {fmt(top['peak_rss_mb'], 1)} MB in `{top['operation']}` = "
                     f"{fmt(top['peak_rss_mb'] / 64)}x the 64 MiB budget "
                     f"({'within' if within else 'OVER'})")
        over = [r for r in lvrows if r["peak_rss_kb"] * 1024 > 64 * MIB]
        if over:
            lines.append("- lakevault operations over 64 MiB: " + ", ".join(
                f"`{r['operation']}` {fmt(r['peak_rss_mb'], 1)} MB" for r in over))
    cb = g("lv_check_big")
    if name == "big-log":
        if cb:
            ok = cb["wall_s"] <= 2.0
            ratios["big-log/check_wall_vs_2s"] = {"wall_s": cb["wall_s"], "vs_2s": cb["wall_s"] / 2,
                                                  "within": ok}
            lines.append(f"- lakevault check of {v['files']} live files: {fmt(cb['wall_s'])} s = "
                         f"{fmt(cb['wall_s'] / 2)}x the 2 s objective ({'within' if ok else 'OVER'})")
        else:
            lines.append("- lakevault check of the big log: FAILED")
    if lines:
        md.append("")
        md.extend(lines)

# Scaling summary across the variants that ran.
scal = [v for v in variants if v["variant"] != "big-log"]
if len(scal) > 1:
    md.append("")
    md.append("## scaling")
    md.append("")
    keys = [("lv_full_gzip", "lakevault full gzip s"), ("tar_czf", "tar -czf s"),
            ("lv_incr", "lakevault incremental s"), ("lv_restore", "lakevault restore s"),
            ("lv_verify", "lakevault verify s"), ("lv_check", "lakevault check s")]
    md.append("| variant | lake MB | files | " + " | ".join(l for _, l in keys) + " |")
    md.append("|---|---:|---:|" + "---:|" * len(keys))
    for v in scal:
        cells = [fmt(get(v["variant"], k) and get(v["variant"], k)["wall_s"]) for k, _ in keys]
        md.append(f"| {v['variant']} | {float(v['lake_bytes']) / MIB:.1f} | {v['files']} | "
                  + " | ".join(cells) + " |")

text = "\n".join(md) + "\n"
open(md_path, "w").write(text)
doc = {"generated": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
       "host": host, "load": load, "tools": tools, "runs_per_row": nruns, "variants": variants,
       "rows": [{k: r[k] for k in ("variant", "key", "operation", "wall_s", "runs_wall_s", "mb_per_s",
                                   "peak_rss_mb", "output_bytes", "output_mb", "lake_bytes", "status",
                                   "note")}
                for r in rows],
       "ratios": ratios}
json.dump(doc, open(json_path, "w"), indent=2)
print(text)
PY
log "results: $out/results.md, $out/results.json"
failed=$(awk -F'\t' 'NR > 1 && $7 == "FAILED"' "$raw" | wc -l)
if [ "$failed" -gt 0 ]; then
  log "$failed operation(s) FAILED (see the notes column); exit 1"
  exit 1
fi
