package config

import (
	"fmt"
	"strings"
)

// closest returns the candidate nearest to got, if one is near enough to be a plausible typo.
// Distance is the optimal string alignment distance (edits plus adjacent transpositions) over
// lowercased strings with '-' read as '_', so "Allow-Origin" is one edit from "allow_origins".
// The allowed distance grows with the candidate's length: one edit for short words, up to three.
func closest(got string, candidates []string) (string, bool) {
	norm := func(s string) string { return strings.ReplaceAll(strings.ToLower(s), "-", "_") }
	g := norm(got)
	best, bestDist := "", -1
	for _, c := range candidates {
		d := editDistance(g, norm(c))
		limit := max(1, min(3, len(c)/3))
		if d > limit {
			continue
		}
		if bestDist < 0 || d < bestDist {
			best, bestDist = c, d
		}
	}
	return best, bestDist >= 0
}

// editDistance is the optimal string alignment distance between a and b, over bytes.
func editDistance(a, b string) int {
	// Rows i-2, i-1 and i of the dynamic programming table.
	prev2 := make([]int, len(b)+1)
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
			if i > 1 && j > 1 && a[i-1] == b[j-2] && a[i-2] == b[j-1] {
				cur[j] = min(cur[j], prev2[j-2]+1)
			}
		}
		prev2, prev, cur = prev, cur, prev2
	}
	return prev[len(b)]
}

// didYouMean is the hint for a name that matched nothing: the closest candidate when there is one,
// else the whole list (what names the list, such as "valid keys"), else none (what names the
// kind of thing, such as "target groups").
func didYouMean(got string, candidates []string, what string) string {
	if c, ok := closest(got, candidates); ok {
		return fmt.Sprintf("did you mean %q?", c)
	}
	if len(candidates) == 0 {
		return "none are defined"
	}
	return what + ": " + strings.Join(candidates, ", ")
}
