// Package auditevents names the events the audit recorder consumes and the
// durable classes that carry them. Publishers (router, genome) and the
// recorder declare these same classes, so their declarations are identical
// and a redeclare is a no-op, whoever starts first.
package auditevents

import (
	eventsv1 "github.com/continuum-mesh/continuum/proto/continuum/events/v1"
)

// Topics of the audit class.
const (
	// ClassName is the durable class covering "audit" and "audit:>".
	ClassName = "audit"
	// SchemaVersion of every audit event payload.
	SchemaVersion = "1"

	TopicRefusal          = "audit:refusal"
	TopicAccessDenied     = "audit:access-denied"
	TopicGovernorOverride = "audit:governor-override"
	TopicPolicyDrift      = "audit:policy-drift"

	// ArtifactAccessDenied is the genome's access-denied artifact key, a
	// durable class of its own.
	ArtifactAccessDenied = "genome/working_set.access_denied"
)

// Class is the durable class of the audit topics.
func Class() *eventsv1.EventClass {
	return &eventsv1.EventClass{
		Name:            ClassName,
		SchemaVersion:   SchemaVersion,
		Durable:         true,
		OnUnknownSchema: eventsv1.UnknownSchemaPolicy_UNKNOWN_SCHEMA_POLICY_FAIL,
	}
}

// AccessDeniedClass is the durable class of the genome's access denials.
func AccessDeniedClass() *eventsv1.EventClass {
	return &eventsv1.EventClass{
		Name:            ArtifactAccessDenied,
		SchemaVersion:   SchemaVersion,
		Durable:         true,
		OnUnknownSchema: eventsv1.UnknownSchemaPolicy_UNKNOWN_SCHEMA_POLICY_FAIL,
	}
}
