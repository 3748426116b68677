#!/usr/bin/env bash
# Runs every fuzz target of the module for a while, one after another.
#
# Usage: bench/fuzz.sh                     every target, FUZZTIME each (default 30s)
#        FUZZTIME=5m bench/fuzz.sh FuzzMatch FuzzParseToken    only those targets
#
# `go test` (and so ./scripts/test and CI) runs each target's seed corpus as an ordinary test;
# this script is the long run. When a target finds a failing input, go test writes it to
# PKG/testdata/fuzz/FuzzX/<hash> and this script stops with its name. Fix the bug, then commit
# that file: from then on every `go test` replays it as a regression case. The script itself
# commits nothing.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="/usr/local/go/bin:$PATH"
FUZZTIME=${FUZZTIME:-30s}

# "dir target" lines for every func FuzzX(f *testing.F) in a _test.go file.
targets=$(grep -rlE --include='*_test.go' '^func Fuzz[A-Za-z0-9_]*\(f \*testing\.F\)' . |
	while read -r file; do
		grep -oE '^func Fuzz[A-Za-z0-9_]*' "$file" | sed "s|^func |$(dirname "$file") |"
	done | sort)
if (($#)); then
	want=" $* "
	targets=$(echo "$targets" | while read -r dir name; do if [[ $want == *" $name "* ]]; then echo "$dir $name"; fi; done)
fi
[ -n "$targets" ] || { echo "no fuzz target matches: $*" >&2; exit 2; }

# With RAMPART_RELIABILITY_REPORT set, each target's result is recorded for docs/reliability.md.
record=""
if [ -n "${RAMPART_RELIABILITY_REPORT:-}" ]; then
	record=$(mktemp -d /tmp/rampart-fuzz.XXXXXX)
	trap 'rm -rf "$record"' EXIT
	go build -o "$record/report" ./bench/reliability-report
fi

failed=()
while read -r dir name; do
	echo "== $name ($dir, $FUZZTIME)"
	log=$(mktemp)
	corpus="$dir/testdata/fuzz/$name"
	for attempt in 1 2; do
		before=$({ ls "$corpus" 2>/dev/null || true; } | wc -l)
		ok=1
		go test "$dir" -run '^$' -fuzz "^${name}\$" -fuzztime "$FUZZTIME" >"$log" 2>&1 || ok=0
		tail -n 20 "$log"
		after=$({ ls "$corpus" 2>/dev/null || true; } | wc -l)
		# Go's fuzzing engine sometimes ends a run with "context deadline exceeded" and no
		# failing input when -fuzztime expires while a worker is busy: not a finding, so run the
		# target once more. A written input is always a finding.
		if ((ok)) || ((after > before)) || ! grep -q 'context deadline exceeded' "$log"; then
			break
		fi
		echo "== $name: the fuzzing engine timed out without a failing input; once more"
	done
	((ok)) || failed+=("$name ($dir)")
	if [ -n "$record" ]; then
		execs=$(grep -oE 'execs: [0-9]+' "$log" | tail -n 1 | grep -oE '[0-9]+' || echo 0)
		if ((ok)); then
			"$record/report" -add -area fuzzing -name "$name (${dir#./})" -test bench/fuzz.sh \
				-expected "no panic, no failed property in $FUZZTIME" -measured "$execs inputs, no failure" -sent "$execs"
		else
			"$record/report" -add -area fuzzing -name "$name (${dir#./})" -test bench/fuzz.sh -fail -failed 1 \
				-expected "no panic, no failed property in $FUZZTIME" -measured "failing input under ${dir#./}/testdata/fuzz/$name/" -sent "$execs"
		fi
	fi
	rm -f "$log"
done <<<"$targets"

if ((${#failed[@]})); then
	echo "== failing inputs were written under testdata/fuzz/ of: ${failed[*]}" >&2
	exit 1
fi
echo "== every target ran $FUZZTIME without a failure"
