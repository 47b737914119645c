package sweep

import (
	"fmt"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/dynamicpb"
)

// Valid-looking ids for seeds.
const (
	seedUUID  = "6f1c2a3b-1111-2222-3333-444455556666"
	seedUUID2 = "7a2d3b4c-1111-2222-3333-444455556666"
	seedSHA   = "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"
)

// seeds are valid requests, in protobuf JSON, for the methods the sweep
// knows. Each field's bad values are also applied to the seed, so they
// reach the validation of that field instead of stopping at the first
// required field the empty request lacks. They only seed: which methods
// are swept comes from the server's reflection. A seed that no longer
// parses against the served proto is skipped and reported as a note.
var seeds = map[string]string{
	"/continuum.mesh.v1.MeshService/Members": `{"includeGone": true}`,
	"/continuum.mesh.v1.MeshService/Resolve": `{"service": "router", "key": "maya"}`,

	"/continuum.debug.v1.DebugService/SetLogLevel":  `{"level": "info"}`,
	"/continuum.debug.v1.DebugService/StreamProbes": `{"classes": ["latency"]}`,

	"/continuum.router.v1.RouterService/Route":     `{"uri": "airc://maya@rig:web/mesh/members?x=1#f"}`,
	"/continuum.router.v1.RouterService/Dispatch":  `{"uri": "mesh/resolve", "params": {"service": "router"}}`,
	"/continuum.router.v1.RouterService/Authorize": `{"uri": "mesh/members", "caller": "admin"}`,
	"/continuum.router.v1.RouterService/PutPolicy": `{"policy": {"default": "POLICY_DEFAULT_FORBID",
		"rules": [{"callers": ["admin"], "uris": ["**"], "verdict": "allow"}]}}`,
	"/continuum.router.v1.RouterService/Subscribe": `{"uri": "events/data:badinput", "filter": {"k": "v"}}`,

	"/continuum.events.v1.EventsService/DeclareClass":   `{"class": {"name": "badinput:class", "schemaVersion": "1"}}`,
	"/continuum.events.v1.EventsService/GetClass":       `{"name": "badinput:class"}`,
	"/continuum.events.v1.EventsService/ResolveChannel": `{"className": "badinput:class", "room": "` + seedUUID + `"}`,
	"/continuum.events.v1.EventsService/Publish": `{"topic": "data:badinput", "payload": {"k": "v"},
		"headers": {"h": "v"}, "msgId": "m1", "schemaVersion": "1"}`,
	"/continuum.events.v1.EventsService/PublishStream": `{"publishes": [{"topic": "data:badinput", "payload": {"k": "v"}, "msgId": "m2"}]}`,
	"/continuum.events.v1.EventsService/Subscribe":     `{"pattern": "data:badinput", "filter": {"k": "v"}}`,
	"/continuum.events.v1.EventsService/Unsubscribe":   `{"subscriptionId": "` + seedUUID + `"}`,

	"/continuum.audit.v1.AuditService/Append":           `{"kind": "refusal", "payload": {"k": "v"}}`,
	"/continuum.audit.v1.AuditService/AppendBatch":      `{"entries": [{"kind": "refusal", "payload": {"k": "v"}}, {"kind": "access-denied"}]}`,
	"/continuum.audit.v1.AuditService/AppendStream":     `{"entries": [{"kind": "refusal", "payload": {"k": "v"}}]}`,
	"/continuum.audit.v1.AuditService/Read":             `{"fromSeq": "1", "limit": "1"}`,
	"/continuum.audit.v1.AuditService/InclusionProof":   `{"seq": "1"}`,
	"/continuum.audit.v1.AuditService/ConsistencyProof": `{"oldSize": "1", "newSize": "1"}`,

	"/continuum.genome.v1.GenomeService/PutArtifact":       `{"header": {"name": "badinput", "sha256": "` + seedSHA + `", "sizeBytes": "5"}}`,
	"/continuum.genome.v1.GenomeService/RegisterPersona":   `{"personaId": "` + seedUUID + `", "capacityBytes": "1048576"}`,
	"/continuum.genome.v1.GenomeService/RegisterPageOwner": `{"page": {"kind": "PAGE_KIND_WHOLE", "artifactId": "` + seedUUID2 + `"}, "ownerPersonaId": "` + seedUUID + `"}`,
	"/continuum.genome.v1.GenomeService/PageIn":            `{"personaId": "` + seedUUID + `", "page": {"kind": "PAGE_KIND_WHOLE", "artifactId": "` + seedUUID2 + `"}}`,
	"/continuum.genome.v1.GenomeService/ReadPage":          `{"personaId": "` + seedUUID + `", "page": {"kind": "PAGE_KIND_WHOLE", "artifactId": "` + seedUUID2 + `"}}`,
	"/continuum.genome.v1.GenomeService/PageOut":           `{"personaId": "` + seedUUID + `", "page": {"kind": "PAGE_KIND_WHOLE", "artifactId": "` + seedUUID2 + `"}, "target": "ROLE_WARM"}`,
	"/continuum.genome.v1.GenomeService/Pin":               `{"personaId": "` + seedUUID + `", "page": {"kind": "PAGE_KIND_WHOLE", "artifactId": "` + seedUUID2 + `"}}`,
	"/continuum.genome.v1.GenomeService/Unpin":             `{"personaId": "` + seedUUID + `", "page": {"kind": "PAGE_KIND_WHOLE", "artifactId": "` + seedUUID2 + `"}}`,
	"/continuum.genome.v1.GenomeService/WorkingSet":        `{"personaId": "` + seedUUID + `"}`,
	"/continuum.genome.v1.GenomeService/Prefetch":          `{"personaId": "` + seedUUID + `", "pages": [{"kind": "PAGE_KIND_BYTE_RANGE", "artifactId": "` + seedUUID2 + `", "offset": "0", "length": "4096"}]}`,

	"/continuum.hippocampus.v1.HippocampusService/Remember": `{"persona": "maya", "channel": "general",
		"engram": {"content": "hello", "entities": ["x"], "topics": ["t"], "importance": 5}}`,
	"/continuum.hippocampus.v1.HippocampusService/Link": `{"persona": "maya", "from": "` + seedUUID + `", "to": "` + seedUUID2 + `",
		"kind": "EDGE_KIND_SHARED_TOPIC", "weight": 0.5}`,
	"/continuum.hippocampus.v1.HippocampusService/Consume":       `{"persona": "maya", "channel": "general", "engramIds": ["` + seedUUID + `"]}`,
	"/continuum.hippocampus.v1.HippocampusService/Peek":          `{"persona": "maya", "channel": "general"}`,
	"/continuum.hippocampus.v1.HippocampusService/Recall":        `{"persona": "maya", "channel": "general", "cue": "hello", "k": 5}`,
	"/continuum.hippocampus.v1.HippocampusService/Forget":        `{"persona": "maya", "engramId": "` + seedUUID + `"}`,
	"/continuum.hippocampus.v1.HippocampusService/Signal":        `{"persona": "maya", "sleepPhase": "SLEEP_PHASE_IDLE"}`,
	"/continuum.hippocampus.v1.HippocampusService/Telemetry":     `{"persona": "maya"}`,
	"/continuum.hippocampus.v1.HippocampusService/Stats":         `{"persona": "maya"}`,
	"/continuum.hippocampus.v1.HippocampusService/ImportPersona": `{"persona": "maya", "chunk": "AA==", "from": "badinput"}`,
	"/continuum.hippocampus.v1.HippocampusService/ExportPersona": `{"persona": "maya", "to": "badinput"}`,
}

// seedFor parses the seed of m against the served descriptors; nil with
// no error when the sweep has no seed for m.
func seedFor(m method, files *protoregistry.Files) (*dynamicpb.Message, error) {
	js, ok := seeds[m.full]
	if !ok {
		return nil, nil
	}
	msg := dynamicpb.NewMessage(m.desc.Input())
	if err := (protojson.UnmarshalOptions{Resolver: dynamicpb.NewTypes(files)}).Unmarshal([]byte(js), msg); err != nil {
		return nil, fmt.Errorf("seed for %s no longer matches the served proto: %w", m.full, err)
	}
	return msg, nil
}
