#!/usr/bin/env bash
# Round-trips the quick set (first 1 MiB of seven Silesia files + enwik6) with a
# fade binary and a preset, and prints a markdown table next to xz -9e.
#   benches/quickset.sh [FADE_BIN] [PRESET] [THREADS]
# The corpus is read from $FADE_CORPUS (default ../shared/corpus).
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
fade=${1:-$here/target/release/fade}
preset=${2:-default}
threads=${3:-2}
corpus=${FADE_CORPUS:-$here/../shared/corpus}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
now() { date +%s.%N; }
echo "| file | bytes | fade ($preset) | ratio | compress KB/s | decompress KB/s | peak RSS MB | xz -9e | xz ratio |"
echo "|---|---|---|---|---|---|---|---|---|"
tot_in=0; tot_out=0; tot_xz=0; tot_ct=0; tot_dt=0
for f in silesia/dickens silesia/mr silesia/nci silesia/ooffice silesia/osdb silesia/reymont silesia/xml enwik6; do
  name=$(basename "$f")
  head -c 1048576 "$corpus/$f" > "$work/$name"
  n=$(stat -c %s "$work/$name")
  t0=$(now)
  /usr/bin/time -f %M -o "$work/mem.c" "$fade" -q -T "$threads" compress -p "$preset" "$work/$name" "$work/$name.fade"
  t1=$(now)
  /usr/bin/time -f %M -o "$work/mem.d" "$fade" -q -T "$threads" decompress "$work/$name.fade" "$work/$name.out"
  t2=$(now)
  cmp -s "$work/$name" "$work/$name.out" || { echo "ROUND TRIP FAILED: $name" >&2; exit 1; }
  c=$(stat -c %s "$work/$name.fade")
  x=$(xz -9e -T1 -c "$work/$name" | wc -c)
  ct=$(echo "$t1 - $t0" | bc); dt=$(echo "$t2 - $t1" | bc)
  mem=$(( $(cat "$work/mem.c" "$work/mem.d" | sort -n | tail -1) / 1024 ))
  printf "| %s | %d | %d | %.3f | %.1f | %.1f | %d | %d | %.3f |\n" "$name" "$n" "$c" "$(echo "$n/$c" | bc -l)" \
    "$(echo "$n/1000/$ct" | bc -l)" "$(echo "$n/1000/$dt" | bc -l)" "$mem" "$x" "$(echo "$n/$x" | bc -l)"
  tot_in=$((tot_in + n)); tot_out=$((tot_out + c)); tot_xz=$((tot_xz + x))
  tot_ct=$(echo "$tot_ct + $ct" | bc); tot_dt=$(echo "$tot_dt + $dt" | bc)
  rm -f "$work/$name"*
done
printf "| **total** | %d | %d | %.3f | %.1f | %.1f | | %d | %.3f |\n" "$tot_in" "$tot_out" "$(echo "$tot_in/$tot_out" | bc -l)" \
  "$(echo "$tot_in/1000/$tot_ct" | bc -l)" "$(echo "$tot_in/1000/$tot_dt" | bc -l)" "$tot_xz" "$(echo "$tot_in/$tot_xz" | bc -l)"
