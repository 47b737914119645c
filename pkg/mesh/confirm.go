package mesh

import (
	"net"
	"slices"
	"time"

	"github.com/hashicorp/memberlist"
)

// Confirming a failure before the mesh believes it.
//
// memberlist applies a "dead" gossip message from any member at once,
// when its incarnation is current: the member is gone on the word of a
// third party. That word can be stale. A node cut off from the mesh
// suspects every other member; its suspicion gossip is spent while nobody
// can hear it, so nobody refutes it, and its suspicion timers fire after
// the cut has healed. It then gossips "dead" about healthy members and
// every member that hears it drops them, until each refutes (chaos
// harness, docs/RELIABILITY.md: false_suspicions). memberlist does not
// tell its event delegate who declared the death, and push/pull already
// treats a remote "dead" as a mere suspicion; Lifeguard's answer to
// slow or isolated members is likewise to look for independent evidence
// before declaring.
//
// So when memberlist reports a live member gone (without a leave notice),
// this node probes it directly (memberlist's Ping, one UDP ping with the
// profile's probe timeout) before the mesh view (Members, owners,
// routing, pooled connections, watchers) declares it DEAD:
//
//   - no answer: DEAD, from the moment the probe failed. A crashed,
//     paused or cut-off member costs one probe timeout more to detect
//     (200 ms local, 500 ms lan).
//   - an answer: the member stays ALIVE and the probe is repeated every
//     probe interval while memberlist's refutation travels (the member
//     hears of its death and gossips a newer incarnation; memberlist
//     reports it back and the check ends). A probe that then fails makes
//     it DEAD. A member that keeps answering but is not reported back
//     within GossipToTheDeadTime (5 s local, 30 s lan: after that
//     memberlist stops gossiping to it, so no refutation can come) is
//     declared DEAD all the same, with a warning: the mesh's view and
//     memberlist's must not part for long.
//
// A leave notice, or memberlist reporting the member back, ends a check
// at once.

// memberGone handles memberlist's report that n is no longer live. It
// runs in memberlist's event delegate, so it must not call memberlist.
func (m *Mesh) memberGone(n *memberlist.Node) {
	st, token, check := m.roster.goneOrCheck(n.Name)
	if !check {
		if !st.live() {
			m.log.Info("member gone", "member", n.Name, "state", st.String())
		}
		return
	}
	addr := &net.UDPAddr{IP: slices.Clone(n.Addr), Port: int(n.Port)}
	m.checkMu.Lock()
	if m.checksDone {
		m.checkMu.Unlock()
		m.roster.checkAbandoned(n.Name, token)
		return
	}
	m.checks.Add(1)
	m.checkMu.Unlock()
	go m.confirmGone(n.Name, addr, token)
}

// confirmGone probes a member memberlist reported gone until the mesh
// can tell whether it is (see above).
func (m *Mesh) confirmGone(name string, addr net.Addr, token uint64) {
	defer m.checks.Done()
	start := time.Now()
	answered := false
	for {
		if !m.roster.checking(name, token) {
			if answered {
				// Reported back (a refutation: still ALIVE) or a leave
				// notice came (LEFT).
				mm, _ := m.roster.get(name)
				m.log.Info("check of a member reported gone ended", "member", name, "state", mm.State.String(),
					"after", time.Since(start).Round(time.Millisecond))
			}
			return
		}
		rtt, err := m.ml.Ping(name, addr)
		select {
		case <-m.done:
			m.roster.checkAbandoned(name, token)
			return
		default:
		}
		if err != nil {
			if st, ok := m.roster.checkFailed(name, token); ok {
				m.log.Info("member gone", "member", name, "state", st.String(), "confirmed_by", "direct probe unanswered")
			}
			return
		}
		if !answered {
			answered = true
			m.log.Info("member reported gone answers a direct probe; held ALIVE until it refutes",
				"member", name, "rtt", rtt)
		}
		if time.Since(start) >= m.checkHold {
			if st, ok := m.roster.checkFailed(name, token); ok {
				m.log.Warn("member answers direct probes but gossip still counts it gone; declared anyway",
					"member", name, "state", st.String(), "held", m.checkHold)
			}
			return
		}
		t := time.NewTimer(m.checkEvery)
		select {
		case <-m.done:
			t.Stop()
			m.roster.checkAbandoned(name, token)
			return
		case <-t.C:
		}
	}
}
