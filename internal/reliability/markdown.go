package reliability

import (
	"fmt"
	"io"
	"slices"
	"strings"
)

// Markdown writes the report: one table per area, in the order areas first appear, each scenario
// once (the last record of a name wins, so a re-run replaces its earlier row).
func Markdown(w io.Writer, scenarios []Scenario) error {
	type key struct{ area, name string }
	last := map[key]int{}
	var areas []string
	for i, s := range scenarios {
		if !slices.Contains(areas, s.Area) {
			areas = append(areas, s.Area)
		}
		last[key{s.Area, s.Name}] = i
	}
	var b strings.Builder
	pass, fail, gaps := 0, 0, 0
	for _, i := range last {
		switch s := scenarios[i]; {
		case !s.Pass:
			fail++
		case s.Gap:
			gaps++
		default:
			pass++
		}
	}
	fmt.Fprintf(&b, "%d scenarios: %d hold, %d do not hold, %d known gap(s).\n", pass+fail+gaps, pass, fail, gaps)
	for _, area := range areas {
		fmt.Fprintf(&b, "\n## %s\n\n", area)
		b.WriteString("| scenario | expected | measured | sent | failed | leaked | crashes | holds |\n")
		b.WriteString("| --- | --- | --- | ---: | ---: | ---: | ---: | --- |\n")
		for i, s := range scenarios {
			if s.Area != area || last[key{s.Area, s.Name}] != i {
				continue
			}
			verdict := "yes"
			switch {
			case !s.Pass:
				verdict = "**NO**"
			case s.Gap:
				verdict = "known gap"
			}
			fmt.Fprintf(&b, "| %s | %s | %s | %d | %d | %d | %d | %s |\n",
				cell(s.Name), cell(s.Expected), cell(s.Measured), s.Sent, s.Failed, s.Leaked, s.Crashes, verdict)
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// cell keeps a value inside one Markdown table cell.
func cell(s string) string {
	s = strings.ReplaceAll(s, "|", `\|`)
	return strings.Join(strings.Fields(s), " ")
}
