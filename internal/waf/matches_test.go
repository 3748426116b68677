package waf

import (
	"fmt"
	"sync"
	"testing"
)

func TestMatchesRingIsBounded(t *testing.T) {
	m := NewMatches(3)
	if got, total := m.Last(10, ""); len(got) != 0 || total != 0 {
		t.Fatalf("empty ring: %v %d", got, total)
	}
	for i := range 5 {
		m.add(Match{ACL: []string{"a", "b"}[i%2], Rule: fmt.Sprint(i)})
	}
	got, total := m.Last(10, "")
	if total != 5 || len(got) != 3 || got[0].Rule != "4" || got[1].Rule != "3" || got[2].Rule != "2" {
		t.Fatalf("Last(10) = %+v, %d; want rules 4, 3, 2 of 5", got, total)
	}
	if got, _ := m.Last(10, "a"); len(got) != 2 || got[0].Rule != "4" || got[1].Rule != "2" {
		t.Fatalf("Last(10, a) = %+v", got)
	}
	if got, _ := m.Last(1, ""); len(got) != 1 || got[0].Rule != "4" {
		t.Fatalf("Last(1) = %+v", got)
	}
	// Concurrent writers and readers (run with -race).
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 200 {
				m.add(Match{Rule: fmt.Sprint(w, i)})
				m.Last(2, "")
			}
		}()
	}
	wg.Wait()
	if _, total := m.Last(1, ""); total != 805 {
		t.Fatalf("total %d, want 805", total)
	}
}
