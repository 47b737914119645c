#!/usr/bin/env bash
# Renders the gateway's status page in headless Chromium against a real
# `continuum up` node, checks the rendered DOM, and saves a screenshot in
# .ci/artifacts/status.png (gitignored; CI keeps it as an artifact).
#
# It builds the binary, runs `continuum up` on ephemeral ports (gRPC,
# gossip and HTTP all on 127.0.0.1:0) with a fresh data directory, causes
# real refusals through the gateway with the user token, waits until the
# audit recorder has them, then loads the page with the admin token and
# asserts on `chromium --dump-dom`: the node is listed alive, every refusal
# is in the live list, and the audit head is verified with every entry.
#
# Chromium (Debian's `chromium` package) is used when present, installed
# with apt-get when running as root; otherwise the script says SKIPPED and
# exits 0. Any failed check exits non-zero.
set -euo pipefail
cd "$(dirname "$0")/.."

OUT="${1:-.ci/artifacts/status.png}"

find_chromium() {
	for c in chromium chromium-browser google-chrome-stable google-chrome; do
		if command -v "$c" >/dev/null 2>&1; then
			command -v "$c"
			return 0
		fi
	done
	return 1
}

if ! CHROMIUM="$(find_chromium)"; then
	if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
		echo "chromium not found; installing Debian's chromium with apt-get"
		apt-get update -qq
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
		CHROMIUM="$(find_chromium)"
	else
		echo "SKIPPED: chromium is not installed and apt-get cannot run here (not root), so the status page was not rendered." \
			"Install it with 'apt-get install -y chromium' to enable this step."
		exit 0
	fi
fi
for tool in curl grep; do
	command -v "$tool" >/dev/null 2>&1 || {
		echo "gateway-screenshot: $tool is required" >&2
		exit 1
	}
done

case "$OUT" in
/*) ;;
*) OUT="$PWD/$OUT" ;;
esac
mkdir -p "$(dirname "$OUT")"
WORK="$(mktemp -d)"
NODE_PID=""
cleanup() {
	if [ -n "$NODE_PID" ]; then
		kill "$NODE_PID" 2>/dev/null || true
		wait "$NODE_PID" 2>/dev/null || true
	fi
	rm -rf "$WORK"
}
trap cleanup EXIT

fail() {
	echo "gateway-screenshot: FAIL: $*" >&2
	if [ -s "$WORK/node.err" ]; then
		echo "--- node log (last 30 lines) ---" >&2
		tail -n 30 "$WORK/node.err" >&2
	fi
	exit 1
}

# poll CMD... runs CMD every 0.2 s until it succeeds or 30 s pass.
poll() {
	local deadline=$((SECONDS + 30))
	until "$@"; do
		[ "$SECONDS" -lt "$deadline" ] || return 1
		sleep 0.2
	done
}

go build -o "$WORK/continuum" ./cmd/continuum
NODE=screenshot
"$WORK/continuum" up --node "$NODE" --data "$WORK/data" --listen 127.0.0.1:0 --gossip 127.0.0.1:0 \
	--http 127.0.0.1:0 >"$WORK/node.out" 2>"$WORK/node.err" &
NODE_PID=$!

status_url() { grep -o 'status page: http://[^ ]*' "$WORK/node.out" | sed 's/^status page: //'; }
poll grep -qs '^status page: ' "$WORK/node.out" || fail "continuum up printed no status page address"
BASE="$(status_url)"
BASE="${BASE%/}"
poll curl -fsS -o /dev/null "$BASE/healthz" || fail "the gateway at $BASE does not answer /healthz"
ADMIN="$(cat "$WORK/data/admin.token")"
USER_TOKEN="$(cat "$WORK/data/user.token")"

# Real refusals: the default policy forbids (or defers) these for a user;
# the router publishes each on audit:refusal and the recorder logs it.
REFUSED=(debug/set-log-level genome/page-out router/put-policy hippocampus/forget)
for uri in "${REFUSED[@]}"; do
	code="$(curl -s -o "$WORK/refusal.json" -w '%{http_code}' -H "Authorization: Bearer $USER_TOKEN" \
		-d "{\"uri\":\"$uri\"}" "$BASE/v1/router/dispatch")"
	case "$code" in
	400 | 403) ;;
	*) fail "$uri as user answered $code: $(cat "$WORK/refusal.json")" ;;
	esac
done
audit_size() {
	curl -fsS -H "Authorization: Bearer $ADMIN" "$BASE/v1/audit/verify" |
		grep -o '"size": *"[0-9]*"' | grep -o '[0-9][0-9]*'
}
audit_has_refusals() { [ "$(audit_size 2>/dev/null || echo 0)" -ge "${#REFUSED[@]}" ]; }
poll audit_has_refusals || fail "the audit log holds $(audit_size || echo '?') entries, want ${#REFUSED[@]} refusals"
ENTRIES="$(audit_size)"

PAGE="$BASE/?access_token=$ADMIN"
chrome() {
	# The page keeps a stream open, so the budget, not the load event,
	# ends the run; 8 s of virtual time covers the members poll, the
	# refusal replay and the verify call.
	timeout 120 "$CHROMIUM" --headless --no-sandbox --disable-gpu --hide-scrollbars --no-first-run \
		--user-data-dir="$WORK/chromium-$1" --window-size=1280,1000 --virtual-time-budget=8000 "${@:2}" "$PAGE" \
		2>>"$WORK/chromium.err"
}
chrome dom --dump-dom >"$WORK/dom.html" || fail "chromium --dump-dom failed: $(tail -n 5 "$WORK/chromium.err")"

check() { # check DESCRIPTION FIXED-STRING
	grep -qF -- "$2" "$WORK/dom.html" || fail "the page does not show $1 (no '$2' in the DOM; saved in $(dirname "$OUT")/status.dom.html)"
}
cp "$WORK/dom.html" "$(dirname "$OUT")/status.dom.html"
check "the node" "<span class=\"node-name\">$NODE</span>"
check "the node alive" '<span class="pill alive">alive</span>'
for uri in "${REFUSED[@]}"; do
	check "the refusal of $uri" "<div class=\"uri\">$uri</div>"
done
check "a live refusal stream" 'id="refusals-live"'
check "a verified audit log" '<dt>verified</dt><dd><span class="pill alive">ok</span></dd>'
check "the audit log's $ENTRIES entries" "<dt>entries</dt><dd>$ENTRIES</dd>"

chrome png --screenshot="$OUT" >/dev/null || fail "chromium --screenshot failed: $(tail -n 5 "$WORK/chromium.err")"
[ -s "$OUT" ] || fail "no screenshot at $OUT"
echo "status page: members, ${#REFUSED[@]} refusals and the audit head ($ENTRIES entries, verified) rendered; screenshot in $OUT"
