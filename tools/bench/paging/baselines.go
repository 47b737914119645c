package paging

import "container/heap"

// LRU returns the hits of a plain, global LRU cache of capacity pages.
func LRU(tr *Trace, capacity int) int {
	type node struct {
		key        int32
		prev, next int32
	}
	nodes := make([]node, 0, capacity)
	where := make([]int32, tr.Keys())
	for i := range where {
		where[i] = -1
	}
	head, tail := int32(-1), int32(-1)
	unlink := func(i int32) {
		n := &nodes[i]
		if n.prev >= 0 {
			nodes[n.prev].next = n.next
		} else {
			head = n.next
		}
		if n.next >= 0 {
			nodes[n.next].prev = n.prev
		} else {
			tail = n.prev
		}
	}
	pushFront := func(i int32) {
		nodes[i].prev, nodes[i].next = -1, head
		if head >= 0 {
			nodes[head].prev = i
		} else {
			tail = i
		}
		head = i
	}
	hits := 0
	for _, k := range tr.key {
		if i := where[k]; i >= 0 {
			hits++
			unlink(i)
			pushFront(i)
			continue
		}
		var i int32
		if len(nodes) < capacity {
			nodes = append(nodes, node{key: k})
			i = int32(len(nodes) - 1)
		} else {
			i = tail
			unlink(i)
			where[nodes[i].key] = -1
			nodes[i].key = k
		}
		where[k] = i
		pushFront(i)
	}
	return hits
}

// Belady returns the hits of Belady's offline optimum for demand paging
// (MIN): every accessed page becomes resident, and on a miss with a full
// cache the resident page whose next use is farthest away is evicted. This
// is the optimum for a pager like the genome manager, which always makes
// a paged-in page resident.
func Belady(tr *Trace, capacity int) int { return belady(tr, capacity, false) }

// BeladyBypass is the optimum of a cache that may also decline to keep the
// incoming page (MIN with bypass): the page whose next use is farthest,
// the incoming page included, is the one not kept. It bounds any cache
// with admission control, so it is reported beside Belady.
func BeladyBypass(tr *Trace, capacity int) int { return belady(tr, capacity, true) }

func belady(tr *Trace, capacity int, bypass bool) int {
	n := tr.Len()
	next := make([]int32, n)
	last := make([]int32, tr.Keys())
	for i := range last {
		last[i] = int32(n) // never again
	}
	for i := n - 1; i >= 0; i-- {
		k := tr.key[i]
		next[i] = last[k]
		last[k] = int32(i)
	}
	cached := make([]int32, tr.Keys()) // next use of the cached copy, or -1
	for i := range cached {
		cached[i] = -1
	}
	h := &farHeap{}
	size := 0
	hits := 0
	for i, k := range tr.key {
		nu := next[i]
		if cached[k] >= 0 {
			hits++
			cached[k] = nu
			heap.Push(h, item{key: k, next: nu})
			continue
		}
		if size < capacity {
			cached[k] = nu
			size++
			heap.Push(h, item{key: k, next: nu})
			continue
		}
		// The farthest-used cached page (skipping stale heap entries).
		for {
			top := (*h)[0]
			if cached[top.key] != top.next {
				heap.Pop(h)
				continue
			}
			break
		}
		top := (*h)[0]
		if bypass && top.next <= nu {
			continue // the incoming page is needed last: do not keep it
		}
		heap.Pop(h)
		cached[top.key] = -1
		cached[k] = nu
		heap.Push(h, item{key: k, next: nu})
	}
	return hits
}

type item struct {
	key  int32
	next int32
}

// farHeap is a max-heap on next use.
type farHeap []item

func (h farHeap) Len() int           { return len(h) }
func (h farHeap) Less(i, j int) bool { return h[i].next > h[j].next }
func (h farHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *farHeap) Push(x any)        { *h = append(*h, x.(item)) }
func (h *farHeap) Pop() any {
	old := *h
	it := old[len(old)-1]
	*h = old[:len(old)-1]
	return it
}
