package mesh

// Rendezvous returns the candidate with the highest random weight for key
// (highest-random-weight hashing): every node that knows the same
// candidates picks the same one, and adding or removing a candidate moves
// only the keys that candidate wins or loses (about 1/n of them). Ties,
// which need a 64-bit collision, go to the smaller name. It returns "" when
// there are no candidates.
func Rendezvous(key string, candidates []string) string {
	best, bestW := "", uint64(0)
	prefix := fnvString(fnvOffset, key)
	prefix = fnvByte(prefix, 0)
	for _, c := range candidates {
		w := weight(prefix, c)
		if best == "" || w > bestW || (w == bestW && c < best) {
			best, bestW = c, w
		}
	}
	return best
}

// weight is FNV-1a 64 of key, a NUL and the candidate, through the
// splitmix64 finaliser: FNV alone mixes its last bytes poorly, which
// would skew candidates whose names differ only at the end ("node-1",
// "node-2").
func weight(prefix uint64, candidate string) uint64 {
	return mix64(fnvString(prefix, candidate))
}

const (
	fnvOffset = 14695981039346656037
	fnvPrime  = 1099511628211
)

func fnvString(h uint64, s string) uint64 {
	for i := 0; i < len(s); i++ {
		h ^= uint64(s[i])
		h *= fnvPrime
	}
	return h
}

func fnvByte(h uint64, b byte) uint64 {
	h ^= uint64(b)
	return h * fnvPrime
}

// mix64 is the splitmix64 finaliser.
func mix64(z uint64) uint64 {
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	return z ^ (z >> 31)
}
