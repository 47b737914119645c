#!/usr/bin/env bash
# Runs every fuzz target in the module, one after the other: the targets
# issue 8 names (URI parser, topic patterns, event filters, policy rules,
# audit line decoder) for FUZZ_LONG each, every other target for
# FUZZ_SHORT (0 skips them: .ci/run does, to stay within its time budget;
# every target's seed corpus still runs in `make test`). Fails when a named target no longer exists, so a rename cannot
# drop it from CI silently. `make fuzz-ci` runs it; `make fuzz FUZZTIME=10m`
# is the long on-demand run.
set -euo pipefail
cd "$(dirname "$0")/.."

GO=${GO:-go}
long=${FUZZ_LONG:-60s}
short=${FUZZ_SHORT:-10s}

# package directory:target, run for $long.
# One target per area the issue names; the gateway's filter parsers and
# the policy matcher run with the short time.
named=(
	pkg/uri:FuzzParse
	pkg/topic:FuzzPattern
	services/events:FuzzSubscribeFilter
	pkg/policy:FuzzParse
	pkg/auditlog:FuzzParseLine
)

declare -A want=()
for n in "${named[@]}"; do want[$n]=1; done
declare -A ran=()

mod=$($GO list -m)
start=$(date +%s)
for pkg in $($GO list ./...); do
	rel=${pkg#"$mod"}
	rel=${rel#/}
	for f in $($GO test -list '^Fuzz' "$pkg" | grep '^Fuzz' || true); do
		t=$short
		if [[ -n ${want[$rel:$f]:-} ]]; then
			t=$long
			ran[$rel:$f]=1
		elif [[ $short == 0 || $short == 0s ]]; then
			continue # FUZZ_SHORT=0: the named targets only (their seeds run in make test anyway)
		fi
		echo "== $rel $f ($t)"
		$GO test -run='^$' -fuzz="^$f\$" -fuzztime="$t" "$pkg"
	done
done

missing=0
for n in "${named[@]}"; do
	if [[ -z ${ran[$n]:-} ]]; then
		echo "fuzz-ci: named target $n not found" >&2
		missing=1
	fi
done
echo "fuzz-ci: done in $(($(date +%s) - start)) s"
exit $missing
