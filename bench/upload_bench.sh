#!/usr/bin/env bash
# Upload throughput to a local S3-compatible server (issue 6): `lakevault upload` of one backup
# against `curl --aws-sigv4 -T` of the same archive file, in the same run, to the same s3rver
# (tests/s3, on 127.0.0.1). Both write through s3rver into the same disk, so the ratio is what
# compares; the MB/s is this machine's.
#
#   bench/upload_bench.sh
#
# Knobs (environment):
#   UPLOAD_BENCH_MB      size of the table's one incompressible data file (default 512)
#   UPLOAD_BENCH_REPEAT  timed runs per variant; the median is reported (default 3)
#   UPLOAD_BENCH_DIR     scratch folder (default bench/out/upload-work)
#   LAKEVAULT_BIN        the binary (default build/lakevault)
# Output: a table on stdout and bench/out/upload.json.
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
bin=${LAKEVAULT_BIN:-$top/build/lakevault}
mb=${UPLOAD_BENCH_MB:-512}
repeat=${UPLOAD_BENCH_REPEAT:-3}
work=${UPLOAD_BENCH_DIR:-$top/bench/out/upload-work}

log() { printf 'upload_bench: %s\n' "$*" >&2; }
die() { log "$*"; exit 1; }
[ -x "$bin" ] || die "no binary at $bin (build first)"
for c in node npm curl /usr/bin/time python3; do
  command -v "$c" >/dev/null || die "$c is missing (make deps installs it)"
done
(cd "$top/tests/s3" && flock .install.lock sh -c 'test -d node_modules/s3rver || npm ci --no-audit --no-fund' >&2)

rm -rf "$work"
mkdir -p "$work/s3data" "$work/project/data/lake/blob/_delta_log"
project=$work/project
log "writing a table with one ${mb} MiB incompressible data file"
head -c $((mb << 20)) /dev/urandom >"$project/data/lake/blob/part-0.parquet"
size=$(stat -c %s "$project/data/lake/blob/part-0.parquet")
cat >"$project/data/lake/blob/_delta_log/00000000000000000000.json" <<EOF
{"protocol":{"minReaderVersion":1,"minWriterVersion":2}}
{"metaData":{"id":"blob","format":{"provider":"parquet","options":{}},"schemaString":"{\"type\":\"struct\",\"fields\":[]}","partitionColumns":[],"configuration":{},"createdTime":0}}
{"add":{"path":"part-0.parquet","partitionValues":{},"size":$size,"modificationTime":0,"dataChange":true,"stats":"{\"numRecords\":1}"}}
EOF

# The server exits when its stdin closes: a fifo held open by this script, so it goes with it.
mkfifo "$work/s3.stdin"
node --openssl-legacy-provider "$top/tests/s3/server.js" "$work/s3data" bench \
  <"$work/s3.stdin" >"$work/s3.port" 2>&1 &
server=$!
exec 9>"$work/s3.stdin"
trap 'kill $server 2>/dev/null || true' EXIT
port=
for _ in $(seq 300); do
  grep -q '^PORT ' "$work/s3.port" 2>/dev/null && { port=$(sed -n 's/^PORT //p' "$work/s3.port"); break; }
  sleep 0.1
done
[ -n "$port" ] || die "s3rver did not start: $(cat "$work/s3.port")"
export AWS_ACCESS_KEY_ID=S3RVER AWS_SECRET_ACCESS_KEY=S3RVER HOME=$work
endpoint="http://127.0.0.1:$port"
cd "$project"
"$bin" key generate backup.key >/dev/null
cat >lakevault.yaml <<EOF
remotes:
  plain: {type: s3, url: "s3://bench/plain", endpoint: "$endpoint", region: us-east-1, path_style: "true"}
EOF
"$bin" backup --full --compress none --no-verify --json >"$work/backup.json"
archive=$(ls "$project"/backups/backup_*.tar)
bytes=$(stat -c %s "$archive")
log "archive $(basename "$archive"): $bytes bytes; s3rver on $endpoint"
cat "$archive" >/dev/null  # warm cache: both read it from memory

# Writes "wall_s rss_mb" of the median of `repeat` runs of the command to $work/median.
measure() {
  local i
  : >"$work/runs"
  for ((i = 0; i < repeat; i++)); do
    /usr/bin/time -f '%e %M' -o "$work/time" "$@" >/dev/null 2>"$work/err" ||
      die "$1 failed: $(tail -3 "$work/err")"
    awk '{printf "%s %.1f\n", $1, $2 / 1024}' "$work/time" >>"$work/runs"
  done
  sort -n "$work/runs" | sed -n "$(((repeat + 1) / 2))p" >"$work/median"
}

# S3 wants x-amz-content-sha256; curl 7.88 leaves it to the caller.
measure curl -sS --fail --aws-sigv4 "aws:amz:us-east-1:s3" \
  --user "$AWS_ACCESS_KEY_ID:$AWS_SECRET_ACCESS_KEY" -H "x-amz-content-sha256: UNSIGNED-PAYLOAD" \
  -T "$archive" "$endpoint/bench/curl/archive.tar"
read -r curl_s curl_rss <"$work/median"
measure "$bin" upload latest --remote plain
read -r plain_s plain_rss <"$work/median"
cat >>lakevault.yaml <<EOF
encryption: {key_file: backup.key}
EOF
measure "$bin" upload latest --remote plain
read -r enc_s enc_rss <"$work/median"

python3 - "$bytes" "$curl_s" "$curl_rss" "$plain_s" "$plain_rss" "$enc_s" "$enc_rss" "$top/bench/out/upload.json" <<'EOF'
import json, sys
b = int(sys.argv[1])
curl_s, curl_rss, plain_s, plain_rss, enc_s, enc_rss = map(float, sys.argv[2:8])
mbs = lambda s: b / s / 1e6 if s > 0 else float("inf")
rows = [
    ("curl --aws-sigv4 -T (one PUT)", curl_s, curl_rss, None),
    ("lakevault upload (multipart)", plain_s, plain_rss, curl_s / plain_s if plain_s else None),
    ("lakevault upload, encrypted", enc_s, enc_rss, curl_s / enc_s if enc_s else None),
]
print(f"upload of {b / 1e6:.1f} MB to s3rver on 127.0.0.1")
print(f"{'':34} {'wall':>8} {'MB/s':>8} {'peak RSS':>9} {'vs curl':>8}")
for name, s, rss, ratio in rows:
    r = f"{ratio:.2f}x" if ratio else ""
    print(f"{name:34} {s:7.2f}s {mbs(s):8.1f} {rss:7.1f}MB {r:>8}")
json.dump({"bytes": b, "runs": [
    {"name": n, "seconds": s, "mb_per_s": mbs(s), "peak_rss_mb": rss, "speed_vs_curl": ratio}
    for n, s, rss, ratio in rows]}, open(sys.argv[8], "w"), indent=2)
EOF
