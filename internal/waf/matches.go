package waf

import (
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/rampart-edge/rampart/internal/admin"
	"github.com/rampart-edge/rampart/internal/proxy"
)

// DefaultSampledMatches is how many recent matches a Shared keeps for the admin API.
const DefaultSampledMatches = 200

// Match is one WAF match as its log line has it: the same fields, with the value truncated and
// redacted the same way (never a secret or a credential header).
type Match struct {
	Time            time.Time `json:"time"`
	ACL             string    `json:"acl"`
	Rule            string    `json:"rule"`
	Action          string    `json:"action"`
	Labels          []string  `json:"labels,omitempty"`
	Field           string    `json:"field,omitempty"`
	Value           string    `json:"value,omitempty"`
	CRSRuleIDs      []int     `json:"crs_rule_ids,omitempty"`
	CRSAnomalyScore *int      `json:"crs_anomaly_score,omitempty"`
	Method          string    `json:"method"`
	Path            string    `json:"path"`
	SourceIP        string    `json:"source_ip"`
	RequestID       string    `json:"request_id"`
}

// Matches is a bounded ring of the most recent matches of the ACLs that share it: memory stays
// fixed whatever the traffic, and a flood of matches only replaces older ones. Safe for
// concurrent use.
type Matches struct {
	mu    sync.Mutex
	ring  []Match
	next  int   // where the next match goes
	total int64 // matches ever recorded
}

// NewMatches returns a ring that keeps the last n matches (at least 1).
func NewMatches(n int) *Matches { return &Matches{ring: make([]Match, max(n, 1))} }

func (m *Matches) add(x Match) {
	m.mu.Lock()
	m.ring[m.next] = x
	m.next = (m.next + 1) % len(m.ring)
	m.total++
	m.mu.Unlock()
}

// Last returns up to n of the most recent matches of acl ("" for every ACL), newest first, and
// how many matches were ever recorded.
func (m *Matches) Last(n int, acl string) ([]Match, int64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	held := int(min(m.total, int64(len(m.ring))))
	out := make([]Match, 0, min(n, held))
	for i := 1; i <= held && len(out) < n; i++ {
		x := m.ring[(m.next-i+len(m.ring))%len(m.ring)]
		if acl == "" || x.ACL == acl {
			out = append(out, x)
		}
	}
	return out, m.total
}

// Capacity is how many matches the ring keeps.
func (m *Matches) Capacity() int { return len(m.ring) }

// Handler serves GET ?limit=N&acl=NAME: {"matches": [newest first], "capacity", "total"}. The
// limit defaults to 50 and is capped at the capacity.
func (m *Matches) Handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := 50
		if v := r.URL.Query().Get("limit"); v != "" {
			var err error
			if n, err = strconv.Atoi(v); err != nil || n < 1 {
				proxy.WriteJSONError(w, http.StatusBadRequest, "limit must be a positive number")
				return
			}
		}
		n = min(n, m.Capacity())
		list, total := m.Last(n, r.URL.Query().Get("acl"))
		admin.WriteJSON(w, http.StatusOK, map[string]any{"matches": list, "capacity": m.Capacity(), "total": total})
	})
}
