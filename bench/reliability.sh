#!/usr/bin/env bash
# Regenerates docs/reliability.md: runs the reliability suite with RAMPART_RELIABILITY_REPORT set,
# every fuzz target for FUZZTIME (default 20s; FUZZTIME=0 skips them), a soak of SOAK (default 2m;
# SOAK=0 skips it), and writes the report from what they recorded. About 15 minutes in all.
# Run as root for the network-namespace test. Everything here uses free ports (TestHostileInput,
# on the default topology's fixed ports, is not part of it).
#
# The scenario lines are kept in $RAMPART_RELIABILITY_REPORT (default
# /tmp/rampart-reliability.jsonl, emptied first unless APPEND=1), so one part can be re-run and
# the report regenerated: APPEND=1 SOAK=5m FUZZTIME=0 TESTS=0 bench/reliability.sh
set -uo pipefail
cd "$(dirname "$0")/.."
export PATH="/usr/local/go/bin:$PATH"
SOAK=${SOAK:-2m}
FUZZTIME=${FUZZTIME:-20s}
TESTS=${TESTS:-1}
export RAMPART_RELIABILITY_REPORT=${RAMPART_RELIABILITY_REPORT:-/tmp/rampart-reliability.jsonl}
[ "${APPEND:-0}" = 1 ] || : >"$RAMPART_RELIABILITY_REPORT"
go build ./... || exit 1
status=0
if [ "$TESTS" != 0 ]; then
	go test -race -count=1 -run 'TestNetnsTiers|TestFaultsUnderLoad|TestHostileInputMore|TestPostgresExampleTopology' ./e2e || status=1
	go test -race -count=1 -run 'TestHangingTargetNoGoroutineLeak' ./internal/lb || status=1
	go test -count=1 -run 'TestBypassCorpus' ./internal/cors || status=1
fi
if [ "$FUZZTIME" != 0 ]; then FUZZTIME=$FUZZTIME bench/fuzz.sh || status=1; fi
if [ "$SOAK" != 0 ]; then bench/soak.sh "$SOAK" || status=1; fi
go run ./bench/reliability-report -in "$RAMPART_RELIABILITY_REPORT" -out docs/reliability.md || status=1
echo "scenario lines: $RAMPART_RELIABILITY_REPORT"
exit $status
