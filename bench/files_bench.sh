#!/usr/bin/env bash
# The whole job on one table with very many small files (issue 8: peak memory whatever the lake's
# size): full backup (verification and prune included), incremental, list, verify, restore and
# consolidate (a synthetic full of the newest backup from its chain's archives) of a table of
# 300,000 live files of 1 KiB of random bytes each, with peak RSS and wall time of each.
#
#   bench/files_bench.sh
#
# Knobs (environment):
#   FILES_BENCH_FILES   live files (default 300000)
#   FILES_BENCH_BYTES   bytes per data file (default 1024)
#   FILES_BENCH_DIR     scratch folder (default bench/out/files-work); the table is kept and reused
#                       while its shape matches, delete it to regenerate
#   FILES_BENCH_STEPS   which of backup incremental list verify restore consolidate to run
#                       (default all)
#   LAKEVAULT_BIN       the binary (default build/lakevault)
# Prints one line a step and writes bench/out/files-bench.json.
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
bin=${LAKEVAULT_BIN:-$top/build/lakevault}
files=${FILES_BENCH_FILES:-300000}
bytes=${FILES_BENCH_BYTES:-1024}
work=${FILES_BENCH_DIR:-$top/bench/out/files-work}
steps=${FILES_BENCH_STEPS:-backup incremental list verify restore consolidate}

log() { printf 'files_bench: %s\n' "$*" >&2; }
die() { log "$*"; exit 1; }
[ -x "$bin" ] || die "no binary at $bin (build first)"
[ -x /usr/bin/time ] || die "/usr/bin/time is missing (Debian package time)"
mkdir -p "$work"
work=$(cd "$work" && pwd)
project="$work/project"

if [ "$(cat "$work/shape" 2>/dev/null)" != "$files/$bytes" ]; then
  rm -rf "$project" "$work/shape"
  log "generating $files live files of $bytes bytes"
  python3 "$top/bench/gen_lake.py" --root "$project" --big-log "$files" --adds-per-commit 1000 \
    --data-bytes "$bytes" --spark-stats >&2
  echo "$files/$bytes" >"$work/shape"
fi
printf 'lake: data/lake\nfiles: []\nlogs: {include: false, path: logs/}\nbackup_path: %s\nlog_file: ""\n' \
  "$work/backups" >"$project/lakevault.yaml"
case " $steps " in *" backup "*) rm -rf "$work/backups" ;; esac
rm -rf "$work/restored"
# Warm cache: the figures are the job's own, not the disk's.
find "$project" -type f -exec cat {} + >/dev/null

results=()
# Runs one step under /usr/bin/time; prints and records "wall_s max_rss_mib".
step() {
  local name=$1
  shift
  (cd "$project" && /usr/bin/time -f "%e %M" -o "$work/time.txt" "$bin" "$@" >"$work/out.txt" 2>&1) ||
    die "$name failed: $(tail -3 "$work/out.txt")"
  read -r wall kb <"$work/time.txt"
  local mib=$((kb / 1024))
  printf '%-8s %8d files  wall %7.2f s  max RSS %5d MiB  (%s)\n' "$name" "$files" "$wall" "$mib" "$*"
  results+=("{\"step\": \"$name\", \"files\": $files, \"wall_s\": $wall, \"max_rss_mib\": $mib}")
}

for s in $steps; do
  case $s in
    # Two fulls: the second one's prune reads a catalogue holding the first one's manifest.
    backup)
      step backup backup --full --no-prune
      step backup2 backup --full
      ;;
    # Nothing changed since the fulls: what an incremental costs is its parent's list.
    incremental) step incr backup --incremental --no-prune ;;
    list) step list list ;;
    verify) step verify verify ;;
    restore) step restore restore --to "$work/restored" --yes ;;
    consolidate) step consol consolidate latest ;;
    *) die "unknown step $s" ;;
  esac
done
mkdir -p "$top/bench/out"
printf '[\n  %s\n]\n' "$(IFS=,; echo "${results[*]}" | sed 's/},{/},\n  {/g')" >"$top/bench/out/files-bench.json"
log "wrote bench/out/files-bench.json"
