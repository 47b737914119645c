package policy

import "fmt"

// defaultYAML is the policy `continuum up` writes to data/policy.yaml. It is
// the first policy a newcomer reads, so it explains itself.
const defaultYAML = `# The Continuum mesh policy: the router's gate.
#
# Every command is named by a URI (genome/page-in, airc://maya/scene/spawn),
# and so is every event publish and subscribe (events/<topic>/publish,
# events/<topic>/subscribe). Before anything runs, the router asks this
# policy whether the caller may use that URI.
#
# Rules are tried from the top; the FIRST rule whose callers AND uris both
# match decides. When no rule matches, "default" decides.
#
#   callers  principal names: "admin" and "user" are bearer-token principals
#            (see the tokens file), "peer:<node>" is a mesh node proven by its
#            certificate, "anonymous" presented nothing. "*" is everyone,
#            anonymous included; a trailing "*" is a prefix ("peer:*" is every
#            mesh node).
#   uris     path patterns, matching a command on any peer: "genome/page-in",
#            "*" for one segment ("events/*/publish"), a final "**" for the
#            rest ("debug/**"; "**" alone is everything). Or airc:// patterns
#            for one peer, node, env or room: "airc://maya:vr/scene/**".
#   verdict  allow; forbid (the caller gets PERMISSION_DENIED with reason
#            FORBIDDEN_<REASON>); or defer (FAILED_PRECONDITION with reason
#            DEFERRED_<REASON>: ask the caller again in the env named by env).
#   reason   kebab-case, required for forbid and defer.
#   env      defer only: web, tty, cli, vr, ar, headless or x-<vendor>.
#   dry_run  true: the rule never decides; what it would have done is logged
#            and published, and the rules below it decide (audit mode).
#
# docs/policy.md has the whole story. A wrong rule is a load error naming
# its index and field, never a rule that silently does nothing.

# Anonymous callers, and anything the rules do not allow, are forbidden
# (reason no-matching-rule).
default: forbid

rules:
  # 0. The holder of the admin token may do everything.
  - callers: ["admin"]
    uris: ["**"]
    verdict: allow

  # 1. Mesh nodes may do everything they ask for themselves. A command a peer
  #    forwards for someone else is not judged by this rule: it arrives with
  #    the original caller's identity and is gated again, here, as that caller.
  - callers: ["peer:*"]
    uris: ["**"]
    verdict: allow

  # 2. Users may not touch the debug service (probe streams, log levels).
  - callers: ["user"]
    uris: ["debug/**"]
    verdict: forbid
    reason: no-permission

  # 3. Paging part of a working set out is deferred: the user is asked to
  #    confirm in the web env first (DEFERRED_ASK_TARGET_ENV). A demonstration
  #    of defer; delete the rule to forbid it outright.
  - callers: ["user"]
    uris: ["genome/page-out"]
    verdict: defer
    reason: ask-target-env
    env: web

  # 4. The audit trail's topics are evidence: users may neither publish to
  #    them (that would forge audit entries) nor read them as events (admins
  #    read the log through the audit service). Patterns cannot glob inside
  #    a segment, so the audit topics are listed by name; the events service
  #    also gates every delivery of a wildcard subscription by its concrete
  #    topic, so subscribing to "audit:*" or ">" does not reach them either.
  - callers: ["user"]
    uris:
      - "events/audit/**"
      - "events/audit:>/*"
      - "events/audit:refusal/*"
      - "events/audit:access-denied/*"
      - "events/audit:governor-override/*"
      - "events/audit:policy-drift/*"
      - "events/audit:federation-policy-drift/*"
      - "events/genome/working_set.access_denied/*"
    verdict: forbid
    reason: audit-topic

  # 5. What users may do: read-only commands, and publish and subscribe on
  #    every other topic (colon topics such as data:chat:created are one
  #    segment; slash artifact keys up to three segments).
  - callers: ["user"]
    uris:
      - "mesh/members"
      - "router/route"
      - "events/*/subscribe"
      - "events/*/publish"
      - "events/*/*/subscribe"
      - "events/*/*/publish"
      - "events/*/*/*/subscribe"
      - "events/*/*/*/publish"
      - "hippocampus/peek"
      - "hippocampus/recall"
      - "genome/page-in"
      - "genome/tiers"
      - "genome/working-set"
      - "audit/verify"
      - "audit/read"
      - "audit/checkpoint"
    verdict: allow

  # Everything else a user asks for falls through to the default: forbidden.
`

// DefaultYAML returns the text of the default policy, with the comments that
// explain it: what continuum up writes to data/policy.yaml.
func DefaultYAML() []byte { return []byte(defaultYAML) }

// Default returns the default policy: the admin token holder and mesh peers
// may do everything; a "user" principal may use read-only commands and
// events outside the audit topics, is forbidden debug/** (no-permission) and
// deferred on genome/page-out (ask-target-env, env web); anonymous callers
// and everything else are forbidden by the default. Its Marshal returns
// DefaultYAML, comments included.
func Default() *Policy {
	p, err := Parse(DefaultYAML())
	if err != nil {
		// The text is a constant and TestDefault loads it.
		panic(fmt.Sprintf("policy: the default policy does not load: %v", err))
	}
	return p
}
