#!/usr/bin/env bash
# Locate, verify, or download the fade benchmark corpus described in
# datasets/MANIFEST.tsv.
#
# Usage:
#   datasets/fetch.sh [DEST]       verify the corpus root; if it is incomplete,
#                                  download the missing files into DEST
#                                  (default: datasets/cache)
#   datasets/fetch.sh --quick DIR  write the quick set (first 1 MiB of each
#                                  Silesia file, whole enwik6) into DIR
#   datasets/fetch.sh -h | --help
#
# The corpus root is $FADE_CORPUS if set, else ../shared/corpus relative to
# the repository root. Files are read in place and never copied into the repo.
set -euo pipefail

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_ROOT=$(dirname "$SCRIPT_DIR")
MANIFEST="$SCRIPT_DIR/MANIFEST.tsv"
CORPUS_ROOT=${FADE_CORPUS:-"$REPO_ROOT/../shared/corpus"}
DEFAULT_DEST="$SCRIPT_DIR/cache"

usage() {
    sed -n '2,14p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
}

die() {
    echo "fetch.sh: error: $*" >&2
    exit 1
}

sha256_of() {
    if command -v sha256sum >/dev/null 2>&1; then
        sha256sum "$1" | cut -d' ' -f1
    else
        shasum -a 256 "$1" | cut -d' ' -f1
    fi
}

size_of() {
    wc -c <"$1" | tr -d ' '
}

# verify FILE BYTES SHA256 -> 0 if the file exists and matches both
verify() {
    [ -f "$1" ] || return 1
    [ "$(size_of "$1")" = "$2" ] || return 1
    [ "$(sha256_of "$1")" = "$3" ]
}

# Manifest rows (header skipped) as tab-separated fields:
# name path bytes sha256 quick_set_bytes source
manifest_rows() {
    [ -f "$MANIFEST" ] || die "manifest not found: $MANIFEST"
    tail -n +2 "$MANIFEST"
}

# ---------------------------------------------------------------- quick mode
quick_set() {
    local out=$1 total=0 count=0
    local name path bytes sha quick source src dst
    mkdir -p "$out"
    while IFS=$'\t' read -r name path bytes sha quick source; do
        [ -n "$name" ] || continue
        src="$CORPUS_ROOT/$path"
        [ -f "$src" ] || src="$DEFAULT_DEST/$path"
        [ -f "$src" ] || die "$path not found in $CORPUS_ROOT or $DEFAULT_DEST (run datasets/fetch.sh first)"
        if [ "$quick" = "$bytes" ]; then
            dst="$out/$name"
        elif [ "$quick" = 1048576 ]; then
            dst="$out/$name.1MiB"
        else
            dst="$out/$name.${quick}B"
        fi
        head -c "$quick" "$src" >"$dst"
        [ "$(size_of "$dst")" = "$quick" ] || die "$dst: expected $quick bytes, got $(size_of "$dst")"
        printf '%-14s %10s bytes  (from %s)\n' "$(basename "$dst")" "$quick" "$src"
        total=$((total + quick))
        count=$((count + 1))
    done < <(manifest_rows)
    echo "quick set: $count files, $total bytes written to $out"
}

# ------------------------------------------------------------ download mode
download_one() {
    # download_one NAME PATH BYTES SHA256 SOURCE DEST
    local name=$1 path=$2 bytes=$3 sha=$4 source=$5 dest=$6
    local url=${source%% *} target="$dest/$path" tmp="$dest/.tmp"
    command -v curl >/dev/null 2>&1 || { echo "  curl not found" >&2; return 1; }
    command -v unzip >/dev/null 2>&1 || { echo "  unzip not found" >&2; return 1; }
    mkdir -p "$(dirname "$target")" "$tmp"
    local zip="$tmp/$(basename "$url")"
    echo "  downloading $url"
    if ! curl -fL --retry 3 -o "$zip" "$url"; then
        rm -f "$zip"
        echo "  download failed: $url" >&2
        return 1
    fi
    if [ "$name" = enwik6 ]; then
        # enwik6 = first 10^6 bytes of enwik9; unzip is cut off by head
        # (SIGPIPE), so its exit status is ignored and the size is checked.
        { unzip -p "$zip" || true; } | head -c "$bytes" >"$target.part"
    else
        unzip -p "$zip" >"$target.part" || { echo "  unzip failed: $zip" >&2; return 1; }
    fi
    rm -f "$zip"
    if verify "$target.part" "$bytes" "$sha"; then
        mv "$target.part" "$target"
        echo "  OK  $path"
    else
        echo "  FAIL $path: size/sha256 mismatch (kept as $target.part)" >&2
        return 1
    fi
}

fetch() {
    local dest=$1 ok=0 missing=() fails=0
    local name path bytes sha quick source
    local -a rows=()
    while IFS= read -r line; do
        [ -n "$line" ] && rows+=("$line")
    done < <(manifest_rows)

    for line in "${rows[@]}"; do
        IFS=$'\t' read -r name path bytes sha quick source <<<"$line"
        if verify "$CORPUS_ROOT/$path" "$bytes" "$sha"; then
            ok=$((ok + 1))
        else
            missing+=("$line")
        fi
    done

    if [ "${#missing[@]}" -eq 0 ]; then
        echo "corpus at $CORPUS_ROOT: all ${#rows[@]} files present and verified (sha256); nothing to do"
        return 0
    fi

    echo "corpus at $CORPUS_ROOT: $ok of ${#rows[@]} files verified; fetching ${#missing[@]} into $dest"
    mkdir -p "$dest"
    # Files already valid in the corpus root are linked, not copied, so that
    # DEST is a complete corpus root usable as FADE_CORPUS.
    for line in "${rows[@]}"; do
        IFS=$'\t' read -r name path bytes sha quick source <<<"$line"
        if verify "$CORPUS_ROOT/$path" "$bytes" "$sha" && [ ! -e "$dest/$path" ]; then
            mkdir -p "$(dirname "$dest/$path")"
            ln -s "$(cd "$(dirname "$CORPUS_ROOT/$path")" && pwd)/$(basename "$path")" "$dest/$path"
        fi
    done
    for line in "${missing[@]}"; do
        IFS=$'\t' read -r name path bytes sha quick source <<<"$line"
        if verify "$dest/$path" "$bytes" "$sha"; then
            echo "$path: already in $dest, verified"
            continue
        fi
        echo "$path: missing or invalid in corpus root"
        download_one "$name" "$path" "$bytes" "$sha" "$source" "$dest" || fails=$((fails + 1))
    done
    rmdir "$dest/.tmp" 2>/dev/null || true

    if [ "$fails" -ne 0 ]; then
        echo "$fails file(s) could not be fetched/verified" >&2
        return 1
    fi
    echo "all files verified in $dest; use it with: export FADE_CORPUS=$(cd "$dest" && pwd)"
}

# ------------------------------------------------------------------- main
case "${1:-}" in
    -h | --help)
        usage
        ;;
    --quick)
        [ $# -eq 2 ] || die "usage: datasets/fetch.sh --quick DIR"
        quick_set "$2"
        ;;
    -*)
        die "unknown option: $1 (see --help)"
        ;;
    *)
        [ $# -le 1 ] || die "usage: datasets/fetch.sh [DEST]"
        fetch "${1:-$DEFAULT_DEST}"
        ;;
esac
