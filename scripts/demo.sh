#!/usr/bin/env bash
# make demo: an example V6 lake built from real Delta tables (written by Spark and delta-rs),
# backed up, listed, verified, extracted with plain tar and compared with the source.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
bin="$top/build/lakevault"
corpus=${LAKEVAULT_CORPUS:-$top/../shared/delta-corpus}
demo="$top/demo"
[ -d "$corpus" ] || { echo "demo: Delta corpus not found at $corpus (set LAKEVAULT_CORPUS)" >&2; exit 1; }

rm -rf "$demo"
mkdir -p "$demo/data/lake" "$demo/config"
# The guide's four tables, each a real table from the corpus.
cp -r "$corpus/delta-0.8.0-partitioned" "$demo/data/lake/position_updates"   # partitioned
cp -r "$corpus/COVID-19_NYT"            "$demo/data/lake/option_snapshots"   # 1.1M rows
cp -r "$corpus/table-with-dv-small"     "$demo/data/lake/option_legs"        # deletion vectors
cp -r "$corpus/checkpoint-cdf-table"    "$demo/data/lake/strategy_executions" # checkpoint + CDF
cat > "$demo/config/production.yaml" <<'YAML'
broker: {host: 127.0.0.1, port: 4002}
strategies: [iron_condor, wheel]
YAML
printf 'IB_ACCOUNT=DU0000000\nDASHBOARD_PASSWORD=demo-only\n' > "$demo/.env"
cd "$demo"

step() { printf '\n\033[1m$ %s\033[0m\n' "$*"; "$@"; }
step "$bin" backup --dry-run
step "$bin" backup
step "$bin" list
step "$bin" verify latest
step "$bin" check

archive=$(ls backups/backup_*.tar.gz | tail -n 1)
step bash -c "cd backups && sha256sum -c $(basename "$archive").sha256"
mkdir -p /tmp/lakevault-demo-restore && rm -rf /tmp/lakevault-demo-restore/*
step tar -xzf "$archive" -C /tmp/lakevault-demo-restore
step diff -r data/lake /tmp/lakevault-demo-restore/data/lake
cmp .env /tmp/lakevault-demo-restore/.env
cmp config/production.yaml /tmp/lakevault-demo-restore/config/production.yaml
rm -rf /tmp/lakevault-demo-restore

# The guide's restore, as one transactional command, then undone; and a recovery drill.
echo "junk" > data/lake/$(ls data/lake | head -n 1)/junk.txt
step "$bin" restore --yes
step "$bin" rollback
rm -f data/lake/*/junk.txt
step "$bin" drill
step "$bin" status || true

files=$(find data/lake -type f | wc -l)
bytes=$(du -sb data/lake | cut -f1)
printf '\n== lakevault demo summary ==\n'
printf 'lake:     %s (4 tables, %s files, %s bytes)\n' "$demo/data/lake" "$files" "$bytes"
printf 'backup:   %s (%s bytes)\n' "$demo/$archive" "$(stat -c %s "$archive")"
printf 'verified: sidecar checksum, every member SHA-256 against the manifest\n'
printf 'plain tar -xzf of the archive equals the lake byte for byte: yes\n'
