package topology

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/rampart-edge/rampart/internal/admin"
)

// requestsMetric is the counter the dashboard's rates come from (internal/observe/metrics.go):
// labels component (gateway, lb, app), name, route, method and code (a class such as 2xx).
const requestsMetric = "rampart_requests_total"

// requestCounters sums rampart_requests_total by component and name, with a break-down by status
// class. It returns nil when there is no gatherer (metrics off), an empty list before the first
// request. The dashboard turns two samples into rates, so the server keeps no history.
func requestCounters(g prometheus.Gatherer) []admin.Requests {
	if g == nil {
		return nil
	}
	families, err := g.Gather()
	out := []admin.Requests{}
	if err != nil && len(families) == 0 {
		return out
	}
	idx := map[[2]string]int{}
	for _, f := range families {
		if f.GetName() != requestsMetric {
			continue
		}
		for _, m := range f.GetMetric() {
			var comp, name, code string
			for _, l := range m.GetLabel() {
				switch l.GetName() {
				case "component":
					comp = l.GetValue()
				case "name":
					name = l.GetValue()
				case "code":
					code = l.GetValue()
				}
			}
			v := m.GetCounter().GetValue()
			k := [2]string{comp, name}
			i, ok := idx[k]
			if !ok {
				i = len(out)
				idx[k] = i
				out = append(out, admin.Requests{Component: comp, Name: name, ByClass: map[string]float64{}})
			}
			out[i].Total += v
			if code != "" {
				out[i].ByClass[code] += v
			}
		}
	}
	sortRequests(out)
	return out
}
