package reliability

import (
	"path/filepath"
	"strings"
	"testing"
)

func TestAppendReadMarkdown(t *testing.T) {
	path := filepath.Join(t.TempDir(), "r.jsonl")
	for _, s := range []Scenario{
		{Area: "faults", Name: "killed", Expected: "0 failed", Measured: "1 failed", Sent: 10, Failed: 1, Pass: false},
		{Area: "hostile", Name: "a|b", Expected: "400", Measured: "400\nok", Sent: 1, Pass: true},
		{Area: "faults", Name: "killed", Expected: "0 failed", Measured: "0 failed", Sent: 12, Pass: true}, // a re-run replaces the row
		{Area: "faults", Name: "restart", Expected: "none dropped", Measured: "2 reset", Sent: 5, Failed: 2, Gap: true, Pass: true},
	} {
		if err := Append(path, s); err != nil {
			t.Fatal(err)
		}
	}
	got, err := Read(path)
	if err != nil || len(got) != 4 {
		t.Fatalf("Read: %d scenarios, %v", len(got), err)
	}
	var b strings.Builder
	if err := Markdown(&b, got); err != nil {
		t.Fatal(err)
	}
	md := b.String()
	for _, want := range []string{
		"3 scenarios: 2 hold, 0 do not hold, 1 known gap(s).",
		"## faults\n", "## hostile\n",
		"| killed | 0 failed | 0 failed | 12 | 0 | 0 | 0 | yes |",
		"| restart | none dropped | 2 reset | 5 | 2 | 0 | 0 | known gap |",
		`| a\|b | 400 | 400 ok | 1 | 0 | 0 | 0 | yes |`,
	} {
		if !strings.Contains(md, want) {
			t.Errorf("report lacks %q:\n%s", want, md)
		}
	}
	if strings.Index(md, "## faults") > strings.Index(md, "## hostile") {
		t.Errorf("areas out of first-seen order:\n%s", md)
	}
}

func TestRecordWithoutReportFileDoesNothing(t *testing.T) {
	t.Setenv(EnvReport, "")
	Record(t, Scenario{Area: "x", Name: "y"}) // must neither fail nor write anywhere
}
