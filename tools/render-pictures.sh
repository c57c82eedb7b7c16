#!/usr/bin/env bash
# Regenerates the README's pictures (docs/images/) from the program's own output:
#   talloc-tree.svg  scripts/07-dot-picture.lua's talloc.dot, drawn by Graphviz, with a legend that is
#                    itself talloc.dot's drawing of a small tree (tools/pictures/legend.lua)
#   pool-map.svg     the pool chapter's example (scripts/01-pool-example.lua), one bar per step, from
#                    talloc.pool_map and talloc.pool_info (tools/pictures/pool-map.lua)
#
#   tools/render-pictures.sh            write docs/images/*.svg
#   tools/render-pictures.sh --check    fail if the committed pictures are not what the program draws now
#
# LUATALLOC=path/to/luatalloc picks the program (default: a debug build, made here). Needs Graphviz's dot.
set -euo pipefail
cd "$(dirname "$0")/.."
check=false
[ "${1:-}" = "--check" ] && check=true

if [ -z "${LUATALLOC:-}" ]; then
  swift build --product luatalloc >&2
  LUATALLOC=.build/debug/luatalloc
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# The tree: the chapter script's graph; under it, the legend: talloc.dot's own drawing of a small tree
# with one thing of each kind, laid out left to right.
"$LUATALLOC" scripts/07-dot-picture.lua > "$work/tree.dot"
"$LUATALLOC" tools/pictures/legend.lua | sed 's/^    graph \[/    graph [rankdir=LR, /' > "$work/legend.dot"
dot -Tsvg "$work/tree.dot" > "$work/tree.svg"
dot -Tsvg "$work/legend.dot" > "$work/legend.svg"
"$LUATALLOC" tools/pictures/stack-svg.lua "$work/tree.svg" "" "$work/legend.svg" \
  "legend (talloc.dot of tools/pictures/legend.lua)" > "$work/talloc-tree.svg"

# The pool map, checked against the maps the chapter script itself prints.
"$LUATALLOC" tools/pictures/pool-map.lua > "$work/pool-map.svg"
grep -o '^<!-- map: .* -->$' "$work/pool-map.svg" | sed 's/^<!-- map: //; s/ -->$//' > "$work/maps-drawn"
"$LUATALLOC" scripts/01-pool-example.lua | sed -n 's/^   map:  //p' > "$work/maps-chapter"
if ! diff -u "$work/maps-chapter" "$work/maps-drawn"; then
  echo "render-pictures: the pool map drawing does not follow scripts/01-pool-example.lua" >&2
  exit 1
fi

if $check; then
  status=0
  # The pool map is exact. Graphviz's coordinates depend on its version and fonts, so the tree is
  # compared by what it says: every text of the drawing, in order (its DOT source is compared with
  # scripts/expected/07-dot-picture.txt by the tests).
  cmp -s "$work/pool-map.svg" docs/images/pool-map.svg || { echo "docs/images/pool-map.svg is stale" >&2; status=1; }
  texts() { grep -o '<text[^>]*>[^<]*</text>' "$1" | sed 's/<[^>]*>//g'; }
  if ! diff <(texts "$work/talloc-tree.svg") <(texts docs/images/talloc-tree.svg) >/dev/null; then
    echo "docs/images/talloc-tree.svg is stale" >&2
    status=1
  fi
  [ $status -eq 0 ] && echo "render-pictures: docs/images/ is up to date"
  exit $status
fi
cp "$work/talloc-tree.svg" "$work/pool-map.svg" docs/images/
echo "render-pictures: wrote docs/images/talloc-tree.svg and docs/images/pool-map.svg"
