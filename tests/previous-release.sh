#!/usr/bin/env bash
# Builds, once, the herald binary of the previous release — the commit in tests/PREVIOUS_RELEASE —
# for the mixed-version cluster tests (a release and the one before it must share a cluster).
# The binary is kept at target/previous/herald-<commit>; later runs reuse it. Prints its path.
set -euo pipefail
cd "$(dirname "$0")/.."

commit=$(tr -d '[:space:]' < tests/PREVIOUS_RELEASE)
out="$PWD/target/previous/herald-$commit"
if [ -x "$out" ]; then
    echo "$out"
    exit 0
fi
if ! git cat-file -e "$commit^{commit}" 2>/dev/null && git remote get-url origin >/dev/null 2>&1; then
    # A shallow clone: fetch just that commit.
    git fetch --quiet origin "$commit" >&2 || true
fi
if ! git cat-file -e "$commit^{commit}" 2>/dev/null; then
    echo "error: the previous release $commit is not in this clone; fetch the history (git fetch --unshallow)" >&2
    exit 1
fi
src="target/previous/src-$commit"
rm -rf "$src"
mkdir -p "$src"
git archive "$commit" | tar -x -C "$src"
echo "== building the previous release ($commit) for the mixed-version tests" >&2
# Its own target directory: its binary must never replace this tree's target/debug/herald.
cargo build --locked --quiet --manifest-path "$src/Cargo.toml" -p herald-server --bin herald \
    --target-dir target/previous/build >&2
cp target/previous/build/debug/herald "$out.tmp"
mv "$out.tmp" "$out"
rm -rf "$src"
echo "$out"
