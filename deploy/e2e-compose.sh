#!/usr/bin/env bash
# End-to-end test of the compose deployment: build the image, bring the mesh
# up, run the README's grpcurl scenarios, scale the hippocampus to 3 and back,
# kill a member and watch it leave, tear everything down. Traffic stays on
# this machine: 127.0.0.1 and the project's own docker network.
set -euo pipefail
cd "$(dirname "$0")/.."

COMPOSE=${COMPOSE:-$(if docker compose version >/dev/null 2>&1; then echo "docker compose"; else echo docker-compose; fi)}
export COMPOSE_PROJECT_NAME=${COMPOSE_PROJECT_NAME:-continuum-e2e}
export CONTINUUM_GRPC_PORT=${CONTINUUM_GRPC_PORT:-17400}
export CONTINUUM_HTTP_PORT=${CONTINUUM_HTTP_PORT:-18080}
ADDR=127.0.0.1:$CONTINUUM_GRPC_PORT
GRPCURL=${GRPCURL:-bin/grpcurl}
WORK=$(mktemp -d)
ok=0
fail() { echo "FAIL: $*"; ok=1; }
pass() { echo "ok: $*"; }

cleanup() {
	if [ "$ok" != 0 ]; then
		echo "--- logs (last 60 lines per service) ---"
		$COMPOSE logs --tail 60 || true
	fi
	$COMPOSE down -v --remove-orphans >/dev/null 2>&1 || true
	rm -rf "$WORK"
}
trap cleanup EXIT

echo "== compose: $COMPOSE, project $COMPOSE_PROJECT_NAME, gRPC on $ADDR"
$COMPOSE down -v --remove-orphans >/dev/null 2>&1 || true
$COMPOSE up -d

# The CA and tokens live in volumes; copy them out of the one-shot jobs.
for i in $(seq 1 60); do
	if docker cp "$($COMPOSE ps -a -q certs)":/certs/ca.crt "$WORK/ca.crt" 2>/dev/null &&
		docker cp "$($COMPOSE ps -a -q tokens)":/tokens/admin.token "$WORK/admin.token" 2>/dev/null &&
		docker cp "$($COMPOSE ps -a -q tokens)":/tokens/user.token "$WORK/user.token" 2>/dev/null; then
		break
	fi
	sleep 1
done
ADMIN=(-H "authorization: Bearer $(tr -d '\n' < "$WORK/admin.token")")
USER=(-H "authorization: Bearer $(tr -d '\n' < "$WORK/user.token")")
G=("$GRPCURL" -cacert "$WORK/ca.crt" -servername localhost -max-time 10)

call() { "${G[@]}" "${ADMIN[@]}" "$@"; }

# Wait for health and for every service to be in the mesh.
deadline=$((SECONDS + 120))
until call -d '{}' "$ADDR" continuum.mesh.v1.MeshService/Members 2>/dev/null | grep -q '"hippocampus"'; do
	[ $SECONDS -lt $deadline ] || { fail "mesh did not come up"; exit 1; }
	sleep 2
done
for svc in router events genome hippocampus audit gateway; do
	call -d '{}' "$ADDR" continuum.mesh.v1.MeshService/Members | grep -q "\"$svc\"" || fail "$svc not in Members"
done
pass "mesh up: $(call -d '{}' "$ADDR" continuum.mesh.v1.MeshService/Members | grep -c '"grpcAddress"') members"

# 0. The gateway answers over HTTP with the caller's token, and refuses without one.
HTTP=http://127.0.0.1:$CONTINUUM_HTTP_PORT
deadline=$((SECONDS + 60))
until curl -fsS -H "authorization: Bearer $(tr -d '\n' < "$WORK/admin.token")" -X POST -d '{"uri":"mesh/members"}' "$HTTP/v1/router/dispatch" >"$WORK/http.out" 2>/dev/null; do
	[ $SECONDS -lt $deadline ] || { fail "gateway did not answer: $(cat "$WORK/http.out" 2>/dev/null)"; break; }
	sleep 1
done
grep -q '"servedBy"' "$WORK/http.out" && pass "gateway dispatches over HTTP"
code=$(curl -s -o "$WORK/http401.out" -w '%{http_code}' -X POST -d '{"uri":"mesh/members"}' "$HTTP/v1/router/dispatch")
[ "$code" = 401 ] && grep -q AUTH_REQUIRED "$WORK/http401.out" && pass "gateway without a token: 401 AUTH_REQUIRED" || fail "gateway without token: $code $(cat "$WORK/http401.out")"
curl -fsS "$HTTP/" | grep -qi '<html' && pass "status page served" || fail "status page"

# 1. A refusal reaches the audit log.
"${G[@]}" "${USER[@]}" -d '{"uri":"debug/set-log-level","params":{"level":"debug"}}' "$ADDR" \
	continuum.router.v1.RouterService/Dispatch >"$WORK/refusal.out" 2>&1 || true
grep -q FORBIDDEN_NO_PERMISSION "$WORK/refusal.out" || fail "user was not refused: $(cat "$WORK/refusal.out")"
deadline=$((SECONDS + 30))
until call -d '{"from_seq":1}' "$ADDR" continuum.audit.v1.AuditService/Read 2>/dev/null | grep -q '"uri": "debug/set-log-level"'; do
	[ $SECONDS -lt $deadline ] || { fail "refusal not in the audit log"; break; }
	sleep 1
done
call -d '{}' "$ADDR" continuum.audit.v1.AuditService/Verify | grep -q '"ok": true' && pass "refusal recorded; audit log verifies" || fail "audit verify"

# 2. A subscription receives a publish.
(call -max-time 20 -d '{"pattern":"e2e:>"}' "$ADDR" continuum.events.v1.EventsService/Subscribe >"$WORK/sub.out" 2>&1 || true) &
sub=$!
deadline=$((SECONDS + 15))
until grep -q subscriptionId "$WORK/sub.out" 2>/dev/null; do
	[ $SECONDS -lt $deadline ] || break
	sleep 0.5
done
call -d '{"topic":"e2e:hello","payload":{"n":1}}' "$ADDR" continuum.events.v1.EventsService/Publish >/dev/null
deadline=$((SECONDS + 15))
until grep -q '"topic": "e2e:hello"' "$WORK/sub.out" 2>/dev/null; do
	[ $SECONDS -lt $deadline ] || { fail "subscription got no delivery: $(cat "$WORK/sub.out")"; break; }
	sleep 0.5
done
kill $sub 2>/dev/null || true
grep -q '"topic": "e2e:hello"' "$WORK/sub.out" && pass "subscription received the publish"

# 3. A page-in faults, then hits.
persona=11111111-2222-4333-8444-555555555555
printf 'continuum e2e artifact bytes' >"$WORK/artifact"
sum=$(sha256sum "$WORK/artifact" | cut -d' ' -f1)
chunk=$(base64 -w0 <"$WORK/artifact")
size=$(wc -c <"$WORK/artifact")
put=$(call -d "{\"header\":{\"name\":\"e2e\",\"sha256\":\"$sum\",\"size_bytes\":$size}} {\"chunk\":\"$chunk\"}" "$ADDR" continuum.genome.v1.GenomeService/PutArtifact)
artifact=$(echo "$put" | sed -n 's/.*"artifactId": "\([^"]*\)".*/\1/p')
[ -n "$artifact" ] || fail "put artifact: $put"
call -d "{\"persona_id\":\"$persona\",\"capacity_bytes\":1048576}" "$ADDR" continuum.genome.v1.GenomeService/RegisterPersona >/dev/null
first=$(call -d "{\"persona_id\":\"$persona\",\"page\":{\"kind\":\"PAGE_KIND_WHOLE\",\"artifact_id\":\"$artifact\"}}" "$ADDR" continuum.genome.v1.GenomeService/PageIn)
second=$(call -d "{\"persona_id\":\"$persona\",\"page\":{\"kind\":\"PAGE_KIND_WHOLE\",\"artifact_id\":\"$artifact\"}}" "$ADDR" continuum.genome.v1.GenomeService/PageIn)
if echo "$first" | grep -q '"fault"' && ! echo "$second" | grep -q '"fault"'; then pass "page-in faulted, then hit"; else fail "page-in: first=$first second=$second"; fi

# 4. A peek after remembers.
for i in 1 2 3; do
	call -d "{\"uri\":\"hippocampus/remember\",\"params\":{\"persona\":\"maya\",\"channel\":\"chat\",\"engram\":{\"content\":\"note $i\",\"topics\":[\"e2e\"],\"importance\":6}}}" "$ADDR" continuum.router.v1.RouterService/Dispatch >/dev/null
done
deadline=$((SECONDS + 20))
until call -d '{"uri":"hippocampus/peek","params":{"persona":"maya","channel":"chat"}}' "$ADDR" continuum.router.v1.RouterService/Dispatch | grep -q engramId; do
	[ $SECONDS -lt $deadline ] || { fail "peek stayed empty"; break; }
	sleep 1
done
pass "peek returns staged engrams after remembers"

# 5. Scale the hippocampus to 3: three members, personas spread, commands reach the owner.
$COMPOSE up -d --scale hippocampus=3 --no-recreate
deadline=$((SECONDS + 90))
hcount() { call -d '{}' "$ADDR" continuum.mesh.v1.MeshService/Members | tr -d ' \n' | grep -o '"services":\[[^]]*"hippocampus"' | wc -l; }
until [ "$(hcount)" = 3 ]; do
	[ $SECONDS -lt $deadline ] || { fail "hippocampus did not reach 3 members ($(hcount))"; break; }
	sleep 2
done
[ "$(hcount)" = 3 ] && pass "3 hippocampus members"
owners=""
for p in ada bob cy dee eve fay gus hal; do
	call -d "{\"uri\":\"hippocampus/remember\",\"params\":{\"persona\":\"$p\",\"channel\":\"chat\",\"engram\":{\"content\":\"hello from $p\"}}}" "$ADDR" continuum.router.v1.RouterService/Dispatch >"$WORK/rem.$p" || fail "remember $p: $(cat "$WORK/rem.$p")"
	served=$(sed -n 's/.*"servedBy": "\([^"]*\)".*/\1/p' "$WORK/rem.$p")
	owner=$(call -d "{\"service\":\"hippocampus\",\"key\":\"$p\"}" "$ADDR" continuum.mesh.v1.MeshService/Resolve | tr -d ' \n' | sed -n 's/.*"member":{"name":"\([^"]*\)".*/\1/p')
	[ "$served" = "$owner" ] || fail "persona $p served by $served, owner $owner"
	owners="$owners $owner"
done
# The gateway's direct hippocampus routes reach each persona's owner too
# (its node proxies by the shard key), never PERSONA_NOT_OWNED.
notowned=0
for p in ada bob cy dee eve fay gus hal; do
	curl -sS -H "authorization: Bearer $(tr -d '\n' < "$WORK/admin.token")" -X POST \
		-d "{\"persona\":\"$p\",\"channel\":\"chat\",\"cue\":\"hello\",\"k\":4}" "$HTTP/v1/hippocampus/recall" >"$WORK/hrecall.$p" 2>&1
	grep -q engramId "$WORK/hrecall.$p" || { notowned=$((notowned + 1)); echo "  persona $p over HTTP: $(head -c 300 "$WORK/hrecall.$p")"; }
done
[ "$notowned" = 0 ] && pass "gateway /v1/hippocampus/recall reaches every persona's owner" || fail "$notowned of 8 personas not recalled through the gateway"
distinct=$(echo "$owners" | tr ' ' '\n' | sort -u | grep -c . || true)
[ "$distinct" -ge 2 ] && pass "8 personas spread over $distinct owners; each command reached its owner" || fail "personas did not spread: $owners"

# 6. Scale back to 1: graceful leavers hand their personas over; nothing is lost.
# The leavers' logs go with their containers; keep them for a failure.
$COMPOSE logs -f --no-color hippocampus >"$WORK/hippocampus.log" 2>&1 &
logs_pid=$!
$COMPOSE up -d --scale hippocampus=1 --no-recreate
deadline=$((SECONDS + 90))
until [ "$(hcount)" = 1 ]; do
	[ $SECONDS -lt $deadline ] || { fail "hippocampus did not go back to 1 ($(hcount))"; break; }
	sleep 2
done
lost=0
for p in ada bob cy dee eve fay gus hal; do
	out=$(call -d "{\"uri\":\"hippocampus/recall\",\"params\":{\"persona\":\"$p\",\"channel\":\"chat\",\"cue\":\"hello\",\"k\":4}}" "$ADDR" continuum.router.v1.RouterService/Dispatch 2>&1 || true)
	case "$out" in
	*engramId*) ;;
	*) lost=$((lost + 1)); echo "  persona $p: $out" ;;
	esac
done
kill "$logs_pid" 2>/dev/null || true
if [ "$lost" = 0 ]; then
	pass "back to 1 member; every persona's engrams still recalled"
else
	fail "$lost of 8 personas lost engrams after the graceful scale-down"
	grep -E 'draining|hand|persona|member gone|Leave|leave|stopped' "$WORK/hippocampus.log" | tail -80
fi

$COMPOSE up -d --scale hippocampus=2 --no-recreate
deadline=$((SECONDS + 90))
until [ "$(hcount)" = 2 ]; do
	[ $SECONDS -lt $deadline ] || { fail "hippocampus did not reach 2 members"; break; }
	sleep 2
done
# 8. Kill one member: it leaves Members within 10 s. (After the lossless
# scale-down above, so this checks failure detection, not crash recovery:
# the hippocampus tests cover restarts.)
victim=$($COMPOSE ps -q hippocampus | head -1)
vname=$(docker inspect -f '{{.Config.Hostname}}' "$victim")
docker kill "$victim" >/dev/null
start=$SECONDS
until ! call -d '{}' "$ADDR" continuum.mesh.v1.MeshService/Members | grep -q "\"$vname\""; do
	[ $((SECONDS - start)) -le 10 ] || { fail "killed member $vname still in Members after 10 s"; break; }
	sleep 0.5
done
[ $((SECONDS - start)) -le 10 ] && pass "killed member $vname left Members in $((SECONDS - start)) s"

[ "$ok" = 0 ] && echo "e2e-compose: all scenarios passed" || echo "e2e-compose: FAILED"
exit $ok
