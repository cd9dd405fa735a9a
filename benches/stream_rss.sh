#!/usr/bin/env bash
# Peak resident memory of fade on streams of different lengths (issue 3): the
# Silesia files concatenated and cut to each size, piped through
# `fade compress - -` and `fade decompress - -`, under /usr/bin/time -v.
# Memory should not grow with the stream's length.
#   benches/stream_rss.sh [FADE_BIN] [PRESET] [SIZES_MIB...]
# Defaults: target/release/fade, preset 1 (the fastest), sizes 8 and 64.
# The corpus is read from $FADE_CORPUS (default ../shared/corpus).
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
fade=${1:-$here/target/release/fade}
preset=${2:-1}
shift 2 || true
sizes=("$@")
[ ${#sizes[@]} -gt 0 ] || sizes=(8 64)
corpus=${FADE_CORPUS:-$here/../shared/corpus}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
echo "| stream MiB | preset | compressed bytes | compress peak RSS MB | compress s | decompress peak RSS MB | decompress s |"
echo "|---:|---|---:|---:|---:|---:|---:|"
for mib in "${sizes[@]}"; do
  { cat "$corpus"/silesia/* || true; } | head -c $((mib * 1048576)) > "$work/in"
  cat "$work/in" | /usr/bin/time -v -o "$work/c.txt" "$fade" -q compress -p "$preset" - - > "$work/in.fade"
  cat "$work/in.fade" | /usr/bin/time -v -o "$work/d.txt" "$fade" -q decompress - - > "$work/out"
  cmp -s "$work/in" "$work/out" || { echo "ROUND TRIP FAILED at $mib MiB" >&2; exit 1; }
  rss() { awk -F': ' '/Maximum resident/ {printf "%.1f", $2 / 1024}' "$1"; }
  secs() { awk -F': ' '/Elapsed \(wall clock\)/ {n = split($2, a, ":"); s = 0; for (i = 1; i <= n; i++) s = s * 60 + a[i]; printf "%.0f", s}' "$1"; }
  echo "| $mib | $preset | $(stat -c %s "$work/in.fade") | $(rss "$work/c.txt") | $(secs "$work/c.txt") | $(rss "$work/d.txt") | $(secs "$work/d.txt") |"
done
