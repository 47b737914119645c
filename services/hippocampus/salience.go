package hippocampus

import (
	"math"
	"time"
)

// Every term of the activation is a log-odds contribution (nats) to "this
// engram is needed now", so the terms add:
//
//	A_i(c,t) = B_i(t) + β_i + W_c·S_{c,i} + W_ctx·Σ_j W_j·S_{j,i} + W_g·S^G_i
//
// The functions here are pure functions of an engram's history and the
// time: scores never depend on how often the region ticked, and nothing but
// a consumption (or the creation) counts as an access, so publishing and
// peeking cannot reinforce a prediction.

// exactAccesses is how many recent access times an engram keeps exactly;
// older ones are summarised by their count and the first access (Petrov's
// hybrid approximation).
const exactAccesses = 3

// accessHistory is an engram's creation and consumptions.
type accessHistory struct {
	n     uint32
	first int64                // unix nanoseconds of the earliest access
	last  [exactAccesses]int64 // most recent first; min(n, 3) are valid
}

// add records an access at t (unix nanoseconds). Accesses may arrive out of
// order (an engram remembered with an old timestamp); the exact times stay
// sorted.
func (a *accessHistory) add(t int64) {
	if a.n == 0 || t < a.first {
		a.first = t
	}
	k := min(int(a.n), exactAccesses)
	// Insert t into last[:k] keeping descending order, dropping the oldest
	// when full.
	pos := k
	for pos > 0 && a.last[pos-1] < t {
		pos--
	}
	if pos < exactAccesses {
		end := min(k, exactAccesses-1)
		copy(a.last[pos+1:end+1], a.last[pos:end])
		a.last[pos] = t
	}
	a.n++
}

// lastAt is the most recent access.
func (a *accessHistory) lastAt() int64 { return a.last[0] }

// baseLevel is ACT-R's base-level activation
//
//	B(t) = ln Σ_k max(t − t_k, 1 s)^(−d)
//
// with the most recent accesses exact and the rest approximated (Petrov
// 2006) as spread evenly between the oldest exact one and the first:
//
//	(n−k)·(t_n^(1−d) − t_k^(1−d)) / ((1−d)·(t_n − t_k))
func baseLevel(a *accessHistory, now int64, d float64) float64 {
	if a.n == 0 {
		return math.Inf(-1)
	}
	k := min(int(a.n), exactAccesses)
	var sum float64
	for j := range k {
		sum += decayTerm(ageSeconds(now, a.last[j]), d)
	}
	if rest := float64(int(a.n) - k); rest > 0 {
		tk := ageSeconds(now, a.last[k-1])
		tn := max(ageSeconds(now, a.first), tk)
		if tn-tk < 1e-9 {
			sum += rest * decayTerm(tk, d)
		} else {
			sum += rest * (math.Pow(tn, 1-d) - math.Pow(tk, 1-d)) / ((1 - d) * (tn - tk))
		}
	}
	return math.Log(sum)
}

// ageSeconds is max(now − t, 1 s) in seconds.
func ageSeconds(now, t int64) float64 {
	return max(float64(now-t)/float64(time.Second), 1)
}

func decayTerm(age, d float64) float64 {
	if d == 0.5 {
		return 1 / math.Sqrt(age)
	}
	return math.Pow(age, -d)
}

// importanceOf maps the wire importance (0 = unknown) to 1..10.
func importanceOf(imp uint32) uint8 {
	if imp == 0 {
		return 5
	}
	return uint8(min(imp, 10))
}

// lnImportance is ln(imp/5), the importance term before its weight.
func lnImportance(imp uint8) float64 {
	if imp == 0 {
		imp = 5
	}
	return math.Log(float64(imp) / 5)
}

// ln0995 is the hourly decay of Generative Agents' recency.
var ln0995 = math.Log(0.995)

// stableSalience is the slow companion of the base level, Generative
// Agents' recency with importance and use:
//
//	σ_i = λ_A·ln(imp_i/5) + ln n_i + (hours since last access)·ln 0.995
func stableSalience(lambdaA, lnImp float64, n uint32, lastAt, now int64) float64 {
	hours := float64(now-lastAt) / float64(time.Hour)
	return lambdaA*lnImp + math.Log(float64(max(n, 1))) + hours*ln0995
}

// stableKey orders engrams by σ at any time: σ_i(t) = key_i + ln0.995·t_h,
// and the second term is the same for every engram, so ranking by the key
// is ranking by σ, without re-sorting as time passes.
func stableKey(lambdaA, lnImp float64, n uint32, lastAt int64) float64 {
	return lambdaA*lnImp + math.Log(float64(max(n, 1))) - float64(lastAt)/float64(time.Hour)*ln0995
}

// channelBias is S_{c,i} = ln(P(c|i)/P(c)) with
//
//	P(c) = (N_c+1)/(N+|C|),  P(c|i) = (n_{i,c} + m·P(c))/(n_i + m)
//
// a soft re-ranking, never a filter.
func channelBias(nc, n, channels, nic, ni, m float64) float64 {
	pc := (nc + 1) / (n + max(channels, 1))
	pci := (nic + m*pc) / (ni + m)
	return math.Log(pci / pc)
}

// featureStrength is S_{j,i} = max(0, ln(N+1) − ln(fan_j+1)) for a feature
// j that engram i has, N being the persona's engram count.
func featureStrength(n, fan int) float64 {
	return max(0, math.Log(float64(n+1))-math.Log(float64(fan+1)))
}

// graphStrength is S^G_j = max(0, ln(N·G_j/ΣG)).
func graphStrength(n int, g, sum float64) float64 {
	if g <= 0 || sum <= 0 {
		return 0
	}
	return max(0, math.Log(float64(n)*g/sum))
}
