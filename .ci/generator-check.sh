#!/usr/bin/env bash
# The service generator's output builds, passes its own test and runs in the
# mesh. In a temporary copy of the repository (this checkout is not touched):
#
#   continuum generate service widget --method Ping --method Echo
#   make generate && go build ./... && go vet && go test -race ./services/widget/...
#   continuum up, then `continuum call widget/ping` and `widget/echo` through
#   the router, and a refused call as the plain user
#
# The copy is the working tree as git sees it: tracked files plus untracked
# ones that are not ignored (on a fresh clone, exactly HEAD). bin/ is linked,
# not copied, so tools installed with `make tools` are reused. KEEP=1 keeps
# the copy for a look afterwards.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)
GO=${GO:-go}

step() { echo; echo "=== generator-check: $* ==="; }

tmp=$(mktemp -d "${TMPDIR:-/tmp}/continuum-generator-check.XXXXXX")
up_pid=""
cleanup() {
	if [ -n "$up_pid" ] && kill -0 "$up_pid" 2>/dev/null; then
		kill "$up_pid" 2>/dev/null || true
		wait "$up_pid" 2>/dev/null || true
	fi
	if [ -n "${KEEP:-}" ]; then
		echo "kept $tmp"
	else
		rm -rf "$tmp"
	fi
}
trap cleanup EXIT

step "copy the repository to $tmp/repo"
mkdir -p "$tmp/repo"
git ls-files -z --cached --others --exclude-standard |
	while IFS= read -r -d '' f; do [ -e "$f" ] && printf '%s\0' "$f"; done |
	tar --null -T - -cf - | tar -xf - -C "$tmp/repo"
if [ -d "$repo/bin" ]; then
	ln -s "$repo/bin" "$tmp/repo/bin"
fi
cd "$tmp/repo"

step "continuum generate service widget --method Ping --method Echo"
# Build the binary once, before the generator wires the new service in:
# until `make generate` runs, the tree does not compile.
"$GO" build -o "$tmp/continuum" ./cmd/continuum
generate=("$tmp/continuum" generate)
"${generate[@]}" service widget --method Ping --method Echo

step "a second run is refused"
if out=$("${generate[@]}" service widget --method Ping 2>&1); then
	echo "a second run for widget succeeded:"; echo "$out"; exit 1
fi
echo "$out" | grep -q 'already exists' || { echo "unexpected refusal: $out"; exit 1; }
echo "refused: $out"

step "make generate"
make generate

step "buf lint, gofmt"
bin/buf lint
unformatted=$(gofmt -l services/widget pkg/node)
if [ -n "$unformatted" ]; then
	echo "gofmt would change: $unformatted"; exit 1
fi

step "golangci-lint on the new service"
if [ -x bin/golangci-lint ]; then
	bin/golangci-lint run ./services/widget/...
else
	echo "skipped: bin/golangci-lint is not installed (make tools installs it)"
fi

step "go build ./..."
"$GO" build ./...

step "go vet"
"$GO" vet ./services/widget/... ./pkg/node/

step "go test -race ./services/widget/..."
"$GO" test -race -count=1 ./services/widget/...

step "continuum up, then call widget/ping and widget/echo through the router"
CGO_ENABLED=0 "$GO" build -o "$tmp/continuum" ./cmd/continuum
"$tmp/continuum" up --listen 127.0.0.1:0 --data "$tmp/data" >"$tmp/up.log" 2>&1 &
up_pid=$!
addr=""
for _ in $(seq 1 150); do
	addr=$(sed -n 's/^continuum up: every service on \([^ ]*\) .*/\1/p' "$tmp/up.log" | head -n 1)
	if [ -n "$addr" ] && "$tmp/continuum" health --addr "$addr" >/dev/null 2>&1; then
		break
	fi
	if ! kill -0 "$up_pid" 2>/dev/null; then
		echo "continuum up exited:"; cat "$tmp/up.log"; exit 1
	fi
	sleep 0.2
done
if [ -z "$addr" ] || ! "$tmp/continuum" health --addr "$addr" >/dev/null 2>&1; then
	echo "continuum up is not healthy after 30 s:"; cat "$tmp/up.log"; exit 1
fi
echo "serving on $addr"
for m in ping echo; do
	out=$("$tmp/continuum" call --addr "$addr" --token-file "$tmp/data/admin.token" "widget/$m" '{"message":"hello from generator-check"}')
	echo "$out"
	echo "$out" | grep -q '"message": *"hello from generator-check"' || { echo "widget/$m did not echo the message"; exit 1; }
	echo "$out" | grep -q '"caller": *"admin"' || { echo "widget/$m did not name the caller"; exit 1; }
done
if out=$("$tmp/continuum" call --addr "$addr" --token-file "$tmp/data/user.token" widget/ping '{"message":"hi"}' 2>&1); then
	echo "the plain user was let through widget/ping:"; echo "$out"; exit 1
fi
echo "$out" | grep -q 'FORBIDDEN' || { echo "unexpected error for the plain user: $out"; exit 1; }
echo "user refused: $out"
kill "$up_pid"
wait "$up_pid" || true
up_pid=""

echo
echo "generator-check passed"
