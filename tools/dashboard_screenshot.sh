#!/usr/bin/env bash
# Regenerates the README's dashboard picture: runs the demo (8 trainers, one of them committing
# digests that do not match its files, a mid-run vote switching to the median) with the
# dashboard, and has headless Chromium capture the page once the last round is in.
#   tools/dashboard_screenshot.sh [OUT.png]      (default docs/images/dashboard.png; ~2 min)
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-docs/images/dashboard.png}
log=$(mktemp)
profile=$(mktemp -d)
fedledger demo --rounds 8 --attackers 1 --attack digest-mismatch --switch-rule median --switch-at 0 \
  --voting-period 4 --dashboard --dashboard-hold 300 >"$log" 2>&1 &
demo=$!
cleanup() {
  kill -TERM "$demo" 2>/dev/null || true  # (SIGINT is ignored by background jobs of a script)
  wait "$demo" || true
  rm -rf "$log" "$profile"
}
trap cleanup EXIT
until grep -q "stays up" "$log"; do
  kill -0 "$demo" 2>/dev/null || { cat "$log"; echo "the demo stopped early" >&2; exit 1; }
  sleep 1
done
url=$(grep -o "dashboard: http://[0-9.:]*/" "$log" | head -1 | cut -d' ' -f2)
sleep 8  # the page's accuracy for the last model
chromium --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
  --disable-background-networking --disable-component-update --disable-sync \
  --user-data-dir="$profile" --window-size=1400,2150 --hide-scrollbars --virtual-time-budget=10000 \
  --screenshot="$out" "$url" 2>/dev/null
echo "wrote $out from $url"
