package waf

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/rampart-edge/rampart/internal/config"
)

// BenchmarkOriginVerify is the cost per request of the default topology's gateway-only rule
// alone, on a request that carries the right secret (the common case). Target: well under 1 µs,
// zero allocations.
func BenchmarkOriginVerify(b *testing.B) {
	a, err := New(gatewayOnlyACL(b), testKeyrings(b), nil)
	if err != nil {
		b.Fatal(err)
	}
	r := httptest.NewRequest(http.MethodGet, "/items", nil)
	r.Header.Set("X-Origin-Verify", currentSecret)
	b.ReportAllocs()
	for b.Loop() {
		if d := a.Evaluate(r); d.Action != config.ActionAllow {
			b.Fatal(d)
		}
	}
}

func crsBenchACL(b *testing.B) *WebACL {
	b.Helper()
	a, err := New(config.WebACL{Name: "crs", DefaultAction: config.ActionAllow, Rules: []config.WAFRule{{
		Name: "owasp-crs", Action: config.ActionBlock,
		Statement: config.Statement{ManagedRuleGroup: &config.ManagedRuleGroupStatement{Name: config.ManagedGroupOWASPCRS, ParanoiaLevel: 1}},
	}}}, nil, nil)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(a.Close)
	return a
}

// BenchmarkCRSGet is CRS at paranoia level 1 on a typical browser GET.
func BenchmarkCRSGet(b *testing.B) {
	a := crsBenchACL(b)
	r := httptest.NewRequest(http.MethodGet, "/items?page=2&sort=name", nil)
	r.Header.Set("User-Agent", "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Safari/537.36")
	r.Header.Set("Accept", "application/json")
	r.Header.Set("Accept-Language", "en-US,en;q=0.9")
	r.Header.Set("Origin", "http://127.0.0.1:3000")
	b.ReportAllocs()
	for b.Loop() {
		if d := a.Evaluate(r); d.Action != config.ActionAllow {
			b.Fatal(d)
		}
	}
}

// BenchmarkCRSPostJSON4K is CRS at paranoia level 1 on 4 KB JSON POSTs: a document of eight
// fields with a long text (few arguments), and a list of 40 small records (about 200 arguments;
// the CRS cost grows with the number of arguments).
func BenchmarkCRSPostJSON4K(b *testing.B) {
	var doc strings.Builder
	doc.WriteString(`{"title":"Quarterly report","author":"Jane Doe","tags":["finance","q3"],"draft":false,"version":3,"body":"`)
	for doc.Len() < 4000 {
		doc.WriteString("Revenue grew in every region this quarter, led by strong demand for the new product line. ")
	}
	doc.WriteString(`"}`)
	var list strings.Builder
	list.WriteString(`{"items":[`)
	for i := 0; list.Len() < 4000; i++ {
		if i > 0 {
			list.WriteByte(',')
		}
		list.WriteString(`{"name":"widget number ` + strings.Repeat("x", 10) + `","price":12.5,"tags":["blue","small"],"in_stock":true}`)
	}
	list.WriteString(`]}`)
	b.Run("document", func(b *testing.B) { benchPost(b, doc.String()) })
	b.Run("records", func(b *testing.B) { benchPost(b, list.String()) })
}

func benchPost(b *testing.B, body string) {
	a := crsBenchACL(b)
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		r := httptest.NewRequest(http.MethodPost, "/items", strings.NewReader(body))
		r.Header.Set("Content-Type", "application/json")
		r.Header.Set("User-Agent", "Mozilla/5.0")
		r.Header.Set("Accept", "application/json")
		if d := a.Evaluate(r); d.Action != config.ActionAllow {
			b.Fatal(d)
		}
	}
}
