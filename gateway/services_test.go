package gateway_test

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/continuum-mesh/continuum/gateway"
	auditv1 "github.com/continuum-mesh/continuum/proto/continuum/audit/v1"
	eventsv1 "github.com/continuum-mesh/continuum/proto/continuum/events/v1"
	genomev1 "github.com/continuum-mesh/continuum/proto/continuum/genome/v1"
	hippocampusv1 "github.com/continuum-mesh/continuum/proto/continuum/hippocampus/v1"
)

// TestServicesOverHTTP calls every service the gateway serves besides the
// router, mesh and debug (events, audit, genome, hippocampus) over HTTP
// against a real node: its interceptors, the default policy, the services
// themselves. Each service gets calls that succeed and refusals whose
// reasons pass through.
func TestServicesOverHTTP(t *testing.T) {
	n := startNode(t)
	_, base := startGateway(t, gateway.Config{MaxUploadBytes: 8 << 20}, plainDial(n.Addr()))

	t.Run("errors", func(t *testing.T) {
		t.Parallel()
		tests := []struct {
			name, method, path, token, body string
			status                          int
			code, reason                    string
		}{
			{
				name: "events: an unknown class", method: "GET", path: "/v1/events/class?name=no:such:class", token: adminToken,
				status: 404, code: "NOT_FOUND", reason: "CLASS_UNKNOWN",
			},
			{
				name: "events: a user may not forge audit events", method: "POST", path: "/v1/events/publish", token: userToken,
				body: `{"topic":"audit:refusal","payload":{"x":1}}`, status: 403, code: "PERMISSION_DENIED", reason: "FORBIDDEN_AUDIT_TOPIC",
			},
			{
				name: "events: a user may not read the classes", method: "GET", path: "/v1/events/classes", token: userToken,
				status: 403, code: "PERMISSION_DENIED", reason: "FORBIDDEN_NO_MATCHING_RULE",
			},
			{
				name: "events: a subscription is deleted, not read", method: "GET", path: "/v1/events/subscriptions/abc", token: adminToken,
				status: 405, code: "UNIMPLEMENTED", reason: "METHOD_NOT_ALLOWED",
			},
			{
				name: "events: no token", method: "GET", path: "/v1/events/classes",
				status: 401, code: "UNAUTHENTICATED", reason: "AUTH_REQUIRED",
			},
			{
				name: "audit: an unknown kind", method: "POST", path: "/v1/audit/entries", token: adminToken,
				body: `{"kind":"gossip","payload":{"x":1}}`, status: 400, code: "INVALID_ARGUMENT", reason: "KIND_UNKNOWN",
			},
			{
				name: "audit: a user may not append", method: "POST", path: "/v1/audit/entries", token: userToken,
				body: `{"kind":"refusal","payload":{"x":1}}`, status: 403, code: "PERMISSION_DENIED", reason: "FORBIDDEN_NO_MATCHING_RULE",
			},
			{
				name: "audit: an inclusion proof of entry 0", method: "GET", path: "/v1/audit/proofs/inclusion?seq=0", token: adminToken,
				status: 400, code: "INVALID_ARGUMENT", reason: "SEQ_OUT_OF_RANGE",
			},
			{
				name: "audit: a malformed number", method: "GET", path: "/v1/audit/proofs/inclusion?seq=x", token: adminToken,
				status: 400, code: "INVALID_ARGUMENT", reason: "REQUEST_INVALID",
			},
			{
				name: "genome: a persona id that is no UUID", method: "POST", path: "/v1/genome/page-in", token: adminToken,
				body: `{"personaId":"maya"}`, status: 400, code: "INVALID_ARGUMENT", reason: "PERSONA_ID_INVALID",
			},
			{
				name: "genome: a user's page-out is deferred", method: "POST", path: "/v1/genome/page-out", token: userToken,
				body: `{}`, status: 400, code: "FAILED_PRECONDITION", reason: "DEFERRED_ASK_TARGET_ENV",
			},
			{
				name: "genome: an unknown persona has no working set", method: "GET", token: userToken,
				path:   "/v1/genome/working-set?persona_id=6f1c2a3b-0000-4000-8000-000000000001",
				status: 404, code: "NOT_FOUND", reason: "PERSONA_UNKNOWN",
			},
			{
				name: "hippocampus: no persona", method: "POST", path: "/v1/hippocampus/remember", token: adminToken,
				body: `{"channel":"general","engram":{"content":"x"}}`, status: 400, code: "INVALID_ARGUMENT", reason: "PERSONA_EMPTY",
			},
			{
				name: "hippocampus: a user may not forget", method: "POST", path: "/v1/hippocampus/forget", token: userToken,
				body: `{"persona":"maya","engramId":"e1"}`, status: 403, code: "PERMISSION_DENIED", reason: "FORBIDDEN_NO_MATCHING_RULE",
			},
			{
				name: "hippocampus: an unknown body field", method: "POST", path: "/v1/hippocampus/recall", token: adminToken,
				body: `{"persona":"maya","cue":"x","kk":3}`, status: 400, code: "INVALID_ARGUMENT", reason: "REQUEST_INVALID",
			},
		}
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				t.Parallel()
				resp := call(t, tc.method, base+tc.path, tc.token, tc.body)
				if resp.StatusCode != tc.status {
					t.Errorf("status %d, want %d", resp.StatusCode, tc.status)
				}
				b := errorOf(t, resp)
				if b.Code != tc.code || b.Reason != tc.reason {
					t.Errorf("got %s %s (%q), want %s %s", b.Code, b.Reason, b.Message, tc.code, tc.reason)
				}
			})
		}
	})

	t.Run("events", func(t *testing.T) {
		t.Parallel()
		var declared eventsv1.DeclareClassResponse
		okProto(t, call(t, "POST", base+"/v1/events/classes", adminToken,
			`{"class":{"name":"gwtest:orders","schemaVersion":"1"}}`), &declared)
		var class eventsv1.GetClassResponse
		okProto(t, call(t, "GET", base+"/v1/events/class?name=gwtest:orders", adminToken, ""), &class)
		if class.GetClass().GetName() != "gwtest:orders" || class.GetClass().GetSchemaVersion() != "1" {
			t.Errorf("class %v", class.GetClass())
		}
		var classes eventsv1.ListClassesResponse
		okProto(t, call(t, "GET", base+"/v1/events/classes", adminToken, ""), &classes)
		if !hasClass(classes.GetClasses(), "gwtest:orders") {
			t.Errorf("classes %v", classes.GetClasses())
		}

		for i := range 3 {
			var pub eventsv1.PublishResponse
			okProto(t, call(t, "POST", base+"/v1/events/publish", userToken,
				`{"topic":"gwtest:orders:created","payload":{"n":`+strconv.Itoa(i)+`}}`), &pub)
			if pub.GetStreamSequence() != uint64(i+1) {
				t.Errorf("publish %d: stream sequence %d", i, pub.GetStreamSequence())
			}
		}

		// The POST form of Subscribe, as newline-delimited JSON: the ack,
		// then the replayed events.
		resp := call(t, "POST", base+"/v1/events/subscribe", userToken, `{"pattern":"gwtest:orders:>","lastN":"3"}`)
		if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != gateway.ContentTypeNDJSON {
			t.Fatalf("subscribe: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
		}
		lines := readNDJSON(resp.Body)
		var ack eventsv1.SubscribeResponse
		lines.next(t, &ack)
		id := ack.GetAck().GetSubscriptionId()
		if id == "" {
			t.Fatalf("first message %v, want an ack", &ack)
		}
		for i := range 3 {
			var d eventsv1.SubscribeResponse
			lines.next(t, &d)
			if got := d.GetDelivery().GetPayload().GetFields()["n"].GetNumberValue(); got != float64(i) || d.GetDelivery().GetSequence() != uint64(i+1) {
				t.Errorf("delivery %d: %v", i, &d)
			}
		}

		var subs eventsv1.ListSubscriptionsResponse
		okProto(t, call(t, "GET", base+"/v1/events/subscriptions", adminToken, ""), &subs)
		found := false
		for _, s := range subs.GetSubscriptions() {
			found = found || s.GetSubscriptionId() == id
		}
		if !found {
			t.Errorf("subscription %s not listed in %v", id, subs.GetSubscriptions())
		}
		// Only the subscriber may end it; then its stream ends cleanly.
		if b := errorOf(t, call(t, "DELETE", base+"/v1/events/subscriptions/"+id, adminToken, "")); b.Reason != "SUBSCRIPTION_NOT_OWNED" {
			t.Errorf("admin unsubscribing a user's subscription: %+v", b)
		}
		var unsub eventsv1.UnsubscribeResponse
		okProto(t, call(t, "DELETE", base+"/v1/events/subscriptions/"+id, userToken, ""), &unsub)
		if !unsub.GetClosed() {
			t.Error("unsubscribe: closed is false")
		}
		lines.ended(t, 10*time.Second)
		resp.Body.Close()
	})

	t.Run("audit", func(t *testing.T) {
		t.Parallel()
		var appended auditv1.AppendResponse
		okProto(t, call(t, "POST", base+"/v1/audit/entries", adminToken,
			`{"kind":"governor-override","payload":{"by":"gateway-test"}}`), &appended)
		seq := appended.GetEntry().GetSeq()
		if seq == 0 || appended.GetEntry().GetChainHash() == "" {
			t.Fatalf("appended %v", appended.GetEntry())
		}
		// The status page's audit head, with a user token.
		var v auditv1.VerifyResponse
		okProto(t, call(t, "GET", base+"/v1/audit/verify", userToken, ""), &v)
		if !v.GetOk() || v.GetSize() < seq || len(v.GetHeadHash()) != 64 {
			t.Errorf("verify %v", &v)
		}
		var cp auditv1.CheckpointResponse
		okProto(t, call(t, "GET", base+"/v1/audit/checkpoint", userToken, ""), &cp)
		if cp.GetSize() < seq || !strings.Contains(cp.GetNote(), cp.GetRootHash()) {
			t.Errorf("checkpoint %v", &cp)
		}
		var key auditv1.PublicKeyResponse
		okProto(t, call(t, "GET", base+"/v1/audit/public-key", adminToken, ""), &key)
		if proto.Size(&key) == 0 {
			t.Error("no public key")
		}
		size := strconv.FormatUint(cp.GetSize(), 10)
		var inc auditv1.InclusionProofResponse
		okProto(t, call(t, "GET", base+"/v1/audit/proofs/inclusion?seq="+strconv.FormatUint(seq, 10)+"&tree_size="+size, adminToken, ""), &inc)
		var cons auditv1.ConsistencyProofResponse
		okProto(t, call(t, "GET", base+"/v1/audit/proofs/consistency?old_size=1&new_size="+size, adminToken, ""), &cons)

		// Read as Server-Sent Events: one "entry" event per entry, then end.
		resp := call(t, "GET", base+"/v1/audit/entries?from_seq="+strconv.FormatUint(seq, 10)+"&limit=1", userToken, "",
			"Accept", gateway.ContentTypeSSE)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("read: %d %+v", resp.StatusCode, errorOf(t, resp))
		}
		defer resp.Body.Close()
		r := readSSE(resp.Body)
		ev := r.nextEvent(t, 10*time.Second)
		var got auditv1.ReadResponse
		if err := protojson.Unmarshal([]byte(ev.data), &got); err != nil || ev.name != "entry" {
			t.Fatalf("event %q %s: %v", ev.name, ev.data, err)
		}
		if got.GetEntry().GetSeq() != seq || got.GetEntry().GetChainHash() != appended.GetEntry().GetChainHash() {
			t.Errorf("read %v, appended %v", got.GetEntry(), appended.GetEntry())
		}
		if ev := r.nextEvent(t, 10*time.Second); ev.name != "end" {
			t.Errorf("after the entry: %q %s", ev.name, ev.data)
		}
	})

	t.Run("genome", func(t *testing.T) {
		t.Parallel()
		const persona = "6f1c2a3b-1111-4000-8000-00000000000a"
		var reg genomev1.RegisterPersonaResponse
		okProto(t, call(t, "POST", base+"/v1/genome/register-persona", adminToken,
			`{"personaId":"`+persona+`","capacityBytes":"67108864"}`), &reg)
		if !reg.GetCreated() {
			t.Error("register persona: created is false")
		}

		// Two and a half chunks, uploaded with a Content-Length.
		artifact := make([]byte, 2<<20+512<<10)
		_, _ = rand.Read(artifact)
		sum := sha256.Sum256(artifact)
		put := upload(t, base+gateway.ArtifactUploadPath+"?name=weights.bin&sha256="+hex.EncodeToString(sum[:]), adminToken, artifact, false)
		var stored genomev1.PutArtifactResponse
		okProto(t, put, &stored)
		if !stored.GetCreated() || stored.GetSizeBytes() != uint64(len(artifact)) || stored.GetSha256() != hex.EncodeToString(sum[:]) {
			t.Fatalf("stored %v", &stored)
		}
		// The same bytes again, chunked with size_bytes: the same artifact.
		again := upload(t, base+gateway.ArtifactUploadPath+"?sha256="+hex.EncodeToString(sum[:])+"&size_bytes="+
			strconv.Itoa(len(artifact)), adminToken, artifact, true)
		var same genomev1.PutArtifactResponse
		okProto(t, again, &same)
		if same.GetCreated() || same.GetArtifactId() != stored.GetArtifactId() {
			t.Errorf("second upload %v, first %v", &same, &stored)
		}

		page := `{"kind":"PAGE_KIND_WHOLE","artifactId":"` + stored.GetArtifactId() + `"}`
		var in genomev1.PageInResponse
		okProto(t, call(t, "POST", base+"/v1/genome/page-in", userToken, `{"personaId":"`+persona+`","page":`+page+`}`), &in)
		if in.GetFault() == nil || in.GetResident().GetSizeBytes() != uint64(len(artifact)) {
			t.Errorf("first page-in %v", &in)
		}
		var ws genomev1.WorkingSetResponse
		okProto(t, call(t, "GET", base+"/v1/genome/working-set?persona_id="+persona, userToken, ""), &ws)
		if len(ws.GetPages()) != 1 {
			t.Errorf("working set %v", &ws)
		}
		var pin genomev1.PinResponse
		okProto(t, call(t, "POST", base+"/v1/genome/pin", adminToken, `{"personaId":"`+persona+`","page":`+page+`}`), &pin)
		if !pin.GetResident().GetPinned() {
			t.Errorf("pin %v", &pin)
		}

		// ReadPage as newline-delimited JSON: the bytes come back whole.
		resp := call(t, "POST", base+"/v1/genome/read-page", adminToken, `{"personaId":"`+persona+`","page":`+page+`}`)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("read page: %d %+v", resp.StatusCode, errorOf(t, resp))
		}
		lines := readNDJSON(resp.Body)
		var back []byte
		for len(back) < len(artifact) {
			var chunk genomev1.ReadPageResponse
			lines.next(t, &chunk)
			back = append(back, chunk.GetChunk()...)
		}
		lines.ended(t, 10*time.Second)
		resp.Body.Close()
		if !bytes.Equal(back, artifact) {
			t.Errorf("read %d bytes, not the artifact's", len(back))
		}

		var tiers genomev1.TiersResponse
		okProto(t, call(t, "GET", base+"/v1/genome/tiers", userToken, ""), &tiers)
		if len(tiers.GetTiers()) == 0 {
			t.Fatal("no tiers")
		}
		home := func(tr *genomev1.TiersResponse) uint64 { return tr.GetTiers()[len(tr.GetTiers())-1].GetPages() }

		// Failed uploads store nothing.
		for _, tc := range []struct {
			name, query  string
			body         []byte
			chunked      bool
			token        string
			status       int
			reason, code string
		}{
			{"a wrong checksum", "?sha256=" + strings.Repeat("0", 64), artifact[:1000], false, adminToken, 400, "CHECKSUM_MISMATCH", "INVALID_ARGUMENT"},
			{"a body over the limit", "?sha256=" + strings.Repeat("0", 64) + "&size_bytes=" + strconv.Itoa(9<<20), make([]byte, 9<<20), true, adminToken, 413, "BODY_TOO_LARGE", "INVALID_ARGUMENT"},
			{"a size over the limit", "?sha256=" + strings.Repeat("0", 64), make([]byte, 9<<20), false, adminToken, 413, "BODY_TOO_LARGE", "INVALID_ARGUMENT"},
			{"a chunked body without size_bytes", "?sha256=" + strings.Repeat("0", 64), artifact[:10], true, adminToken, 400, "QUERY_INVALID", "INVALID_ARGUMENT"},
			{"size_bytes against the Content-Length", "?sha256=" + strings.Repeat("0", 64) + "&size_bytes=11", artifact[:10], false, adminToken, 400, "QUERY_INVALID", "INVALID_ARGUMENT"},
			{"an unknown parameter", "?sha=1", artifact[:10], false, adminToken, 400, "QUERY_INVALID", "INVALID_ARGUMENT"},
			{"a repeated parameter", "?name=a&name=b", artifact[:10], false, adminToken, 400, "QUERY_INVALID", "INVALID_ARGUMENT"},
			{"a user may not upload", "?sha256=" + hex.EncodeToString(sum[:]), artifact, false, userToken, 403, "FORBIDDEN_NO_MATCHING_RULE", "PERMISSION_DENIED"},
			{"no token", "?sha256=" + hex.EncodeToString(sum[:]), artifact, false, "", 401, "AUTH_REQUIRED", "UNAUTHENTICATED"},
		} {
			resp := upload(t, base+gateway.ArtifactUploadPath+tc.query, tc.token, tc.body, tc.chunked)
			if resp.StatusCode != tc.status {
				t.Errorf("%s: status %d, want %d", tc.name, resp.StatusCode, tc.status)
			}
			if b := errorOf(t, resp); b.Reason != tc.reason || b.Code != tc.code {
				t.Errorf("%s: %s %s (%s), want %s %s", tc.name, b.Code, b.Reason, b.Message, tc.code, tc.reason)
			}
		}
		var after genomev1.TiersResponse
		okProto(t, call(t, "GET", base+"/v1/genome/tiers", userToken, ""), &after)
		if home(&after) != home(&tiers) {
			t.Errorf("the home tier holds %d artifacts after the failed uploads, %d before", home(&after), home(&tiers))
		}
	})

	t.Run("hippocampus", func(t *testing.T) {
		t.Parallel()
		var ids []string
		for _, content := range []string{"maya likes typescript", "maya ships the gateway"} {
			var rem hippocampusv1.RememberResponse
			okProto(t, call(t, "POST", base+"/v1/hippocampus/remember", adminToken,
				`{"persona":"maya","channel":"general","engram":{"content":"`+content+`","entities":["maya"],"topics":["code"]}}`), &rem)
			if rem.GetId() == "" {
				t.Fatalf("remember %v", &rem)
			}
			ids = append(ids, rem.GetId())
		}
		var link hippocampusv1.LinkResponse
		okProto(t, call(t, "POST", base+"/v1/hippocampus/link", adminToken,
			`{"persona":"maya","from":"`+ids[1]+`","to":"`+ids[0]+`","kind":"EDGE_KIND_TASK_OUTCOME"}`), &link)
		var rec hippocampusv1.RecallResponse
		okProto(t, call(t, "POST", base+"/v1/hippocampus/recall", userToken,
			`{"persona":"maya","channel":"general","cue":"typescript","k":2,"withContent":true}`), &rec)
		recalled := false
		for _, it := range rec.GetItems() {
			recalled = recalled || (it.GetEngramId() == ids[0] && it.GetContent() == "maya likes typescript")
		}
		if !recalled {
			t.Errorf("recall %v", &rec)
		}
		var peek hippocampusv1.PeekResponse
		okProto(t, call(t, "GET", base+"/v1/hippocampus/peek?persona=maya&channel=general&with_content=true", userToken, ""), &peek)
		var consume hippocampusv1.ConsumeResponse
		okProto(t, call(t, "POST", base+"/v1/hippocampus/consume", adminToken,
			`{"persona":"maya","channel":"general","engramIds":["`+ids[0]+`"]}`), &consume)
		var stats hippocampusv1.StatsResponse
		okProto(t, call(t, "GET", base+"/v1/hippocampus/stats?persona=maya", adminToken, ""), &stats)
		if stats.GetEngrams() != 2 {
			t.Errorf("stats %v", &stats)
		}
		var forget hippocampusv1.ForgetResponse
		okProto(t, call(t, "POST", base+"/v1/hippocampus/forget", adminToken, `{"persona":"maya","engramId":"`+ids[1]+`"}`), &forget)
		if !forget.GetForgotten() {
			t.Error("forget: forgotten is false")
		}
		var sig hippocampusv1.SignalResponse
		okProto(t, call(t, "POST", base+"/v1/hippocampus/signal", adminToken, `{"pressure":"PRESSURE_NOMINAL"}`), &sig)

		// Telemetry is a stream that stays open: it answers 200 and its
		// first bytes (the SSE retry line) without waiting for a tick.
		resp := call(t, "GET", base+"/v1/hippocampus/telemetry?persona=maya", adminToken, "", "Accept", gateway.ContentTypeSSE)
		if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), gateway.ContentTypeSSE) {
			t.Errorf("telemetry: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
		}
		resp.Body.Close()
	})
}

func hasClass(classes []*eventsv1.EventClass, name string) bool {
	for _, c := range classes {
		if c.GetName() == name {
			return true
		}
	}
	return false
}

// okProto checks a 200 JSON answer and reads it into m.
func okProto(t *testing.T, resp *http.Response, m proto.Message) {
	t.Helper()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("%s %s: status %d: %+v", resp.Request.Method, resp.Request.URL.Path, resp.StatusCode, errorOf(t, resp))
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if err := protojson.Unmarshal(b, m); err != nil {
		t.Fatalf("%s: %v", b, err)
	}
}

// upload posts body as an artifact, with a Content-Length or chunked.
func upload(t *testing.T, url, token string, body []byte, chunked bool) *http.Response {
	t.Helper()
	var rd io.Reader = bytes.NewReader(body)
	if chunked {
		rd = io.NopCloser(rd) // hides the length: Transfer-Encoding: chunked
	}
	req, err := http.NewRequest("POST", url, rd)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	req.Header.Set("Content-Type", "application/octet-stream")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	return resp
}

// ndjsonReader reads a newline-delimited JSON stream in the background.
type ndjsonReader struct {
	lines chan []byte
	err   error
}

func readNDJSON(body io.Reader) *ndjsonReader {
	r := &ndjsonReader{lines: make(chan []byte, 1024)}
	go func() {
		sc := bufio.NewScanner(body)
		sc.Buffer(make([]byte, 0, 64<<10), 8<<20)
		for sc.Scan() {
			r.lines <- bytes.Clone(sc.Bytes())
		}
		r.err = sc.Err()
		close(r.lines)
	}()
	return r
}

// next reads the next {"result": ...} line into m; an {"error": ...} line
// or the end of the stream fails the test.
func (r *ndjsonReader) next(t *testing.T, m proto.Message) {
	t.Helper()
	select {
	case line, ok := <-r.lines:
		if !ok {
			t.Fatalf("stream ended: %v", r.err)
		}
		var frame struct {
			Result json.RawMessage    `json:"result"`
			Error  *gateway.ErrorBody `json:"error"`
		}
		if err := json.Unmarshal(line, &frame); err != nil {
			t.Fatalf("%s: %v", line, err)
		}
		if frame.Error != nil {
			t.Fatalf("stream error %+v", *frame.Error)
		}
		if err := protojson.Unmarshal(frame.Result, m); err != nil {
			t.Fatalf("%s: %v", frame.Result, err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("no line within 30s")
	}
}

// ended waits for the end of the stream, which must carry no more lines.
func (r *ndjsonReader) ended(t *testing.T, within time.Duration) {
	t.Helper()
	select {
	case line, ok := <-r.lines:
		if ok {
			t.Errorf("a line after the last: %s", line)
		}
	case <-time.After(within):
		t.Fatalf("the stream did not end within %s", within)
	}
}
