#!/usr/bin/env bash
# Captures the gateway's status page in headless Chromium into
# dist/status.png (the CI artifacts folder).
#
# It starts a three-node mesh and the gateway in front of it inside
# `go test -run TestStatusPageScreenshot ./gateway` (the events service is
# not wired into nodes yet, so the test feeds the refusal list from a
# stand-in events server) and points Chromium at the page. Once
# `continuum up --http` exists, the same capture works against
#   go run ./cmd/continuum up --http 127.0.0.1:18080
# with URL http://127.0.0.1:18080/?access_token=$(cat data/admin.token).
#
# Chromium: used when present; installed with apt-get when running as root;
# otherwise the script says so and skips (exit 0).
set -euo pipefail
cd "$(dirname "$0")/.."

OUT="${1:-dist/status.png}"

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
		echo "chromium not found; installing it with apt-get"
		apt-get update -qq
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
		CHROMIUM="$(find_chromium)"
	else
		echo "SKIP: chromium is not installed and this is not root (apt-get install -y chromium to enable the status page screenshot)"
		exit 0
	fi
fi

case "$OUT" in
/*) ;;
*) OUT="$PWD/$OUT" ;;
esac
mkdir -p "$(dirname "$OUT")"
go test -count=1 -run '^TestStatusPageScreenshot$' ./gateway -v \
	-args -screenshot="$OUT" -chromium="$CHROMIUM"
echo "status page: $OUT"
