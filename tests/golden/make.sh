#!/usr/bin/env bash
# Regenerates the golden files (only when the format changes on purpose; bump
# the format version then). Each built-in preset compresses a prefix of
# sample.txt small enough for the tests to decode quickly (tiny, the test
# preset, and fast also under qemu, which is slow). tests/portability.rs lists the same prefixes.
# Files of retired built-in presets (sample.NAME-ID.fade, models/retired/) are
# never regenerated: they stay as the files those identifiers wrote.
set -euo pipefail
cd "$(dirname "$0")"
fade=${FADE:-../../target/release/fade}
head -c 4096 sample.txt | "$fade" compress -p ../data/tiny.toml -c - > sample.tiny.fade
head -c 1024 sample.txt | "$fade" compress -p fast -c - > sample.fast.fade
for p in medium default strong; do
  head -c 8192 sample.txt | "$fade" compress -p "$p" -c - > "sample.$p.fade"
done
head -c 512 sample.txt | "$fade" compress -p paper -c - > sample.paper.fade
ls -l *.fade
