#!/usr/bin/env bash
# Every C++ file follows the project's .clang-format, as Debian 12's clang-format 14 applies it
# (other major versions format differently: skipped, exit 77). Fix: clang-format -i FILE.
set -euo pipefail
cd "$1"
command -v clang-format >/dev/null || { echo "clang-format is not installed (scripts/install-deps.sh installs it)"; exit 1; }
major=$(clang-format --version | sed -n 's/.*version \([0-9]*\)\..*/\1/p')
[ "$major" = 14 ] || { echo "clang-format $major, not 14: formatting not checked"; exit 77; }
bad=0
while IFS= read -r -d '' f; do
  if ! clang-format --dry-run -Werror "$f" >/dev/null 2>&1; then
    echo "not formatted: $f"
    bad=$((bad + 1))
  fi
done < <(find src include tests bench tools \( -name '*.cpp' -o -name '*.h' \) -print0 | sort -z)
[ "$bad" -eq 0 ] || { echo "$bad file(s) differ from .clang-format (clang-format -i FILE)"; exit 1; }
echo "all C++ files formatted"
