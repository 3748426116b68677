package config

import (
	"fmt"
	"sort"
	"strings"
)

// Error is one problem found in a configuration file, with the place it was found.
//
// Path names the offending key in the tree, such as
// load_balancers[0].listeners[0].rules[1].action.forward.target_group. Msg says what is wrong; Hint,
// when set, says how to fix it. Messages never contain secret values.
type Error struct {
	File      string
	Line, Col int
	Path      string
	Msg       string
	Hint      string
}

// Error formats e as FILE:LINE:COL: PATH: MSG; HINT. Parts that are unknown (a zero line or
// column, an empty path or hint) are left out together with their separator.
func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString(e.File)
	if e.Line > 0 {
		fmt.Fprintf(&b, ":%d", e.Line)
		if e.Col > 0 {
			fmt.Fprintf(&b, ":%d", e.Col)
		}
	}
	b.WriteString(": ")
	if e.Path != "" {
		b.WriteString(e.Path)
		b.WriteString(": ")
	}
	b.WriteString(e.Msg)
	if e.Hint != "" {
		b.WriteString("; ")
		b.WriteString(e.Hint)
	}
	return b.String()
}

// Errors is every problem found in one file, in file order. Parse and Load return it (as an error)
// so that a user fixes a file in one pass rather than one error per run.
type Errors []*Error

// Error returns one line per error.
func (es Errors) Error() string {
	lines := make([]string, len(es))
	for i, e := range es {
		lines[i] = e.Error()
	}
	return strings.Join(lines, "\n")
}

// sortByPosition orders errors as they appear in the file; errors without a line come first.
func (es Errors) sortByPosition() {
	sort.SliceStable(es, func(i, j int) bool {
		if es[i].Line != es[j].Line {
			return es[i].Line < es[j].Line
		}
		return es[i].Col < es[j].Col
	})
}
