package main

import (
	"fmt"
	"slices"
	"strings"
)

// localCommands are the commands that run without a server, beside the client commands.
var localCommands = []string{"serve", "worker", "version", "help", "completion", "cache"}

// commandNames are the names `slipway NAME` takes, sorted.
func commandNames() []string {
	names := slices.Clone(localCommands)
	for key := range clientCommands {
		name, _, _ := strings.Cut(key, " ")
		if !slices.Contains(names, name) {
			names = append(names, name)
		}
	}
	slices.Sort(names)
	return names
}

// didYouMean is `; did you mean "build"?` for the name closest to word when it is close
// enough to be a slip (at most two letters off), else "".
func didYouMean(word string, names []string) string {
	best, bestD := "", 3
	for _, n := range names {
		if d := editDistance(word, n); d < bestD && d < len(word) {
			best, bestD = n, d
		}
	}
	if best == "" {
		return ""
	}
	return fmt.Sprintf("; did you mean %q?", best)
}

// editDistance counts the letters to insert, delete, replace or swap with their
// neighbour to make a into b (optimal string alignment).
func editDistance(a, b string) int {
	ra, rb := []rune(a), []rune(b)
	d := make([][]int, len(ra)+1)
	for i := range d {
		d[i] = make([]int, len(rb)+1)
		d[i][0] = i
	}
	for j := range d[0] {
		d[0][j] = j
	}
	for i := 1; i <= len(ra); i++ {
		for j := 1; j <= len(rb); j++ {
			cost := 1
			if ra[i-1] == rb[j-1] {
				cost = 0
			}
			d[i][j] = min(d[i-1][j]+1, d[i][j-1]+1, d[i-1][j-1]+cost)
			if i > 1 && j > 1 && ra[i-1] == rb[j-2] && ra[i-2] == rb[j-1] {
				d[i][j] = min(d[i][j], d[i-2][j-2]+1)
			}
		}
	}
	return d[len(ra)][len(rb)]
}
