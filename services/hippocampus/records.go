package hippocampus

// Records are the persona mutations the journal holds. The live path builds
// a record (deriving edges under the persona's lock), applies it with the
// same functions a replay uses, then journals it; so a replay reproduces
// the state exactly, whatever the configuration is when it runs.

type recordKind uint8

const (
	recRemember recordKind = 1
	recConsume  recordKind = 2
	recLink     recordKind = 3
	recForget   recordKind = 4
	recDrop     recordKind = 5
)

// edgeRec is an edge by engram ids with its resulting weight.
type edgeRec struct {
	from, to string
	kind     EdgeKind
	weight   float32
}

// rememberRec stores one engram (features already normalized).
type rememberRec struct {
	id, content, channel, replyTo string
	entities, topics              []string
	importance                    uint8
	at                            int64
	edges                         []edgeRec
}

// consumeRec is one request's use of engrams.
type consumeRec struct {
	channel string
	at      int64
	ids     []string
	edges   []edgeRec
}

// forgetRec deletes an engram.
type forgetRec struct {
	id string
	at int64
}

// record is one journal entry.
type record struct {
	kind    recordKind
	lsn     uint64
	persona string
	rem     rememberRec
	con     consumeRec
	link    edgeRec
	forget  forgetRec
}
