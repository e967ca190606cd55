#!/usr/bin/env bash
# The guide's scripts/backup.sh, kept so existing cron lines and runbooks work: a thin wrapper
# around `lakevault backup`. Flags: --dry-run, --path DIR, --upload-s3 (and --upload-rsync);
# any other flag is passed to lakevault as is.
set -euo pipefail

# Backup settings, as in the guide. Empty means: take lakevault.yaml or lakevault's defaults
# (backups/, 30 days, gzip). lakevault reads these variables itself.
BACKUP_PATH="${BACKUP_PATH:-}"
RETENTION_DAYS="${RETENTION_DAYS:-}"
COMPRESS="${COMPRESS:-}"
UPLOAD_S3="${UPLOAD_S3:-}"
S3_BUCKET="${S3_BUCKET:-}"
UPLOAD_RSYNC="${UPLOAD_RSYNC:-}"
RSYNC_DEST="${RSYNC_DEST:-}"
export BACKUP_PATH RETENTION_DAYS COMPRESS UPLOAD_S3 S3_BUCKET UPLOAD_RSYNC RSYNC_DEST

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
lakevault=${LAKEVAULT_BIN:-}
if [ -z "$lakevault" ]; then
  if [ -x "$here/../build/lakevault" ]; then lakevault="$here/../build/lakevault"
  elif command -v lakevault >/dev/null 2>&1; then lakevault=$(command -v lakevault)
  else echo "backup.sh: lakevault not found (build it with make, or set LAKEVAULT_BIN)" >&2; exit 1
  fi
fi

args=(backup)
while [ $# -gt 0 ]; do
  case "$1" in
    --dry-run) args+=(--dry-run) ;;
    --path) [ $# -ge 2 ] || { echo "backup.sh: --path needs a folder" >&2; exit 2; }
            args+=(--path "$2"); shift ;;
    --path=*) args+=(--path "${1#--path=}") ;;
    --upload-s3) args+=(--upload s3) ;;
    --upload-rsync) args+=(--upload rsync) ;;
    -h|--help) echo "usage: backup.sh [--dry-run] [--path DIR] [--upload-s3] [--upload-rsync] [lakevault backup options]"; exit 0 ;;
    *) args+=("$1") ;;
  esac
  shift
done
exec "$lakevault" "${args[@]}"
