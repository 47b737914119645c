package genome

import (
	"cmp"
	"slices"
)

// sortBy sorts s by an unsigned key, keeping equal keys in order.
func sortBy[T any](s []T, key func(T) uint64) {
	slices.SortStableFunc(s, func(a, b T) int { return cmp.Compare(key(a), key(b)) })
}
