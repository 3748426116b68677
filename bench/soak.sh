#!/usr/bin/env bash
# Soak: runs the default topology (`rampart run`) for DURATION under a mixed load (GET and POST
# through the gateway, CORS-rejected and WAF-blocked requests, preflights) and samples the
# process's RSS, threads, open files and goroutines (when /metrics exports go_goroutines) every
# EVERY. Exits non-zero when RSS grows more than MAX_GROWTH after the first quarter (warm-up), or
# when any answer is not the expected one.
#
# Usage: bench/soak.sh [DURATION]        (default 2m; EVERY=10s WORKERS=8 MAX_GROWTH=0.25)
#        RAMPART_RELIABILITY_REPORT=FILE bench/soak.sh 10m    also records the result for
#                                                             docs/reliability.md
# The topology is the embedded default moved to free ports on 127.77.0.x, so a soak can run next
# to anything using the default ports.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="/usr/local/go/bin:$PATH"
DURATION=${1:-2m}
EVERY=${EVERY:-10s}
WORKERS=${WORKERS:-8}
MAX_GROWTH=${MAX_GROWTH:-0.25}

work=$(mktemp -d /tmp/rampart-soak.XXXXXX)
pid=""
cleanup() {
	if [ -n "$pid" ]; then kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; fi
	rm -rf "$work"
}
trap cleanup EXIT

go build -o "$work/rampart" ./cmd/rampart
go build -o "$work/soakload" ./bench/soakload

free_port() { "$work/soakload" -free-port "$1"; }
net=127.77.0
gw=$net.1:$(free_port $net.1)
lb=$net.1:$(free_port $net.1)
a1=$net.2:$(free_port $net.2)
a2=$net.2:$(free_port $net.2)
web=$net.1:$(free_port $net.1)
admin=$net.1:$(free_port $net.1)
sed -e "s/127.0.0.1:8080/$gw/g" -e "s/127.0.0.1:8081/$lb/g" -e "s/127.0.0.2:9001/$a1/g" \
	-e "s/127.0.0.2:9002/$a2/g" -e "s/127.0.0.3/$net.3/g" -e "s/127.0.0.1:3000/$web/g" \
	-e "s/127.0.0.1:9900/$admin/g" examples/rampart.yaml >"$work/rampart.yaml"
# The demo page's origin is allowed by the default CORS policy; keep it allowed on its new port.
sed -i "s|\"http://127.0.0.1:3000\"|\"http://$web\"|" "$work/rampart.yaml"

(cd "$work" && exec ./rampart run -c rampart.yaml --log-level error >"$work/rampart.log" 2>&1) &
pid=$!
for _ in $(seq 100); do
	curl -fs -o /dev/null "http://$gw/items" && break
	sleep 0.2
done
curl -fs -o /dev/null "http://$gw/items" || { echo "rampart did not start:"; cat "$work/rampart.log"; exit 1; }

echo "== soak: rampart run (pid $pid) for $DURATION, $WORKERS clients, a sample every $EVERY"
metrics=""
curl -fs "http://$admin/metrics" 2>/dev/null | grep -q '^go_goroutines ' && metrics="http://$admin/metrics"
status=0
"$work/soakload" -gateway "http://$gw" -lb "http://$lb" -origin "http://$web" -pid "$pid" \
	${metrics:+-metrics "$metrics"} -duration "$DURATION" -every "$EVERY" -workers "$WORKERS" \
	-max-growth "$MAX_GROWTH" ${RAMPART_RELIABILITY_REPORT:+-report "$RAMPART_RELIABILITY_REPORT"} || status=$?
kill -0 "$pid" 2>/dev/null || { echo "rampart exited during the soak:"; tail -20 "$work/rampart.log"; status=1; }
exit $status
