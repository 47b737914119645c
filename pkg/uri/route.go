package uri

// Decision is where a command goes. The policy gate and the transports see
// a Decision, never the URI string, so that what is authorised and what is
// delivered are the same value.
type Decision struct {
	Kind     Kind
	Peer     string // peer name or canonical UUID; Peer and Broadcast only
	Node     string // Peer and Broadcast only; "" for any node
	Env      string // "" for no env filter; "*" for Broadcast
	Room     string // canonical room UUID; Room only
	Path     string
	Query    string
	Fragment string
}

// Route maps a URI to its route decision. It is pure and total: it keeps
// only the fields that the URI's Kind defines, so a hand-built URI with stray
// fields cannot smuggle a peer into a Local or Room decision. A Broadcast
// always carries Env "*". An unknown Kind is passed through with no routing
// fields so that the gate, which switches on Kind, rejects it.
func Route(u URI) Decision {
	d := Decision{Kind: u.Kind, Path: u.Path, Query: u.Query, Fragment: u.Fragment}
	switch u.Kind {
	case KindLocal:
	case KindPeer:
		d.Peer, d.Node, d.Env = u.Peer, u.Node, u.Env
	case KindBroadcast:
		d.Peer, d.Node, d.Env = u.Peer, u.Node, "*"
	case KindRoom:
		d.Room, d.Env = u.Room, u.Env
	}
	return d
}
