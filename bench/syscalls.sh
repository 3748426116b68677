#!/usr/bin/env bash
# Syscalls and context switches per request of each process of a chain under load: what the
# kernel does for each hop (docs/performance.md, "Where the time goes"). Same pinning as
# bench/chain.sh: servers on CPU 0, wrk on CPU 1.
#
# Usage: bench/syscalls.sh                      (every chain)
#        CHAINS="nginx rampart" bench/syscalls.sh
# Needs perf (Debian: linux-perf) with tracepoints, and root or kernel.perf_event_paranoid <= 1.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="/usr/local/go/bin:$PATH"
CHAINS=${CHAINS:-"nginx gochain rampart allinone allinone-loopback"}
need=()
command -v wrk >/dev/null 2>&1 || need+=(wrk)
command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || need+=(nginx)
command -v perf >/dev/null 2>&1 || need+=(linux-perf)
if ((${#need[@]})); then
	sudo=""
	[ "$(id -u)" -eq 0 ] || sudo="sudo"
	DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
NGINX=$(command -v nginx || echo /usr/sbin/nginx)

work=$(mktemp -d /tmp/rampart-syscalls.XXXXXX)
export BENCH_DIR=$work BENCH_ORIGIN=http://bench.example
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
}
trap cleanup EXIT
go build -o "$work/rampart" ./cmd/rampart
go build -o "$work/backend" ./bench/backend
go build -o "$work/goproxy" ./bench/goproxy

start() { # start CMD...: pinned to CPU 0; the PID goes to $started
	taskset -c 0 "$@" >>"$work/servers.log" 2>&1 &
	started=$!
	pids+=("$started")
}

# shellcheck source=bench/nginx-conf.sh
source bench/nginx-conf.sh

start "$work/backend" -listen 127.0.0.1:9101
backend=$started
echo "| chain | process | syscalls / request | of which nanosleep | context switches / request |"
echo "| --- | --- | --- | --- | --- |"
for chain in $CHAINS; do
	procs=()
	names=()
	case $chain in
	nginx)
		start "$NGINX" -c "$(nginx_conf 2 127.0.0.1:9121 127.0.0.1:9101)"; procs+=("$started"); names+=("nginx (inner)")
		start "$NGINX" -c "$(nginx_conf 1 127.0.0.1:9120 127.0.0.1:9121)"; procs+=("$started"); names+=("nginx (outer)")
		url=http://127.0.0.1:9120/items ;;
	gochain)
		start "$work/goproxy" -listen 127.0.0.1:9131 -target http://127.0.0.1:9101; procs+=("$started"); names+=("goproxy (inner)")
		start "$work/goproxy" -listen 127.0.0.1:9130 -target http://127.0.0.1:9131; procs+=("$started"); names+=("goproxy (outer)")
		url=http://127.0.0.1:9130/items ;;
	rampart)
		start "$work/rampart" lb -c bench/rampart-chain.yaml --log-level warn; procs+=("$started"); names+=("rampart lb")
		start "$work/rampart" gateway -c bench/rampart-chain.yaml --log-level warn; procs+=("$started"); names+=("rampart gateway")
		url=http://127.0.0.1:9110/items ;;
	allinone | allinone-loopback)
		flag=""
		[ "$chain" = allinone-loopback ] && flag=--loopback-hop
		start "$work/rampart" run -c bench/rampart-chain.yaml --log-level warn $flag; procs+=("$started"); names+=("rampart run $flag")
		url=http://127.0.0.1:9110/items ;;
	*) echo "unknown chain $chain" >&2; exit 2 ;;
	esac
	procs+=("$backend")
	names+=("backend")
	for _ in $(seq 1 200); do curl -fsS -o /dev/null -H "Origin: $BENCH_ORIGIN" "$url" 2>/dev/null && break; sleep 0.05; done
	taskset -c 1 wrk -t2 -c64 -d2s -s bench/wrk-report.lua "$url" >/dev/null
	taskset -c 1 wrk -t2 -c64 -d9s -s bench/wrk-report.lua "$url" >"$work/wrk.out" &
	wrk_pid=$!
	sleep 1
	stats=()
	for i in "${!procs[@]}"; do
		perf stat -x, -e raw_syscalls:sys_enter,syscalls:sys_enter_nanosleep,context-switches -p "${procs[$i]}" -o "$work/stat.$i" -- sleep 6 &
		stats+=($!)
	done
	wait "${stats[@]}"
	wait "$wrk_pid"
	read -r reqs secs < <(sed -n 's/.*requests=\([0-9]*\) seconds=\([0-9.]*\).*/\1 \2/p' "$work/wrk.out")
	for i in "${!procs[@]}"; do
		awk -F, -v r="$reqs" -v s="$secs" -v chain="$chain" -v name="${names[$i]}" '
			/raw_syscalls:sys_enter/ {sys=$1} /sys_enter_nanosleep/ {ns=$1} /context-switches/ {cs=$1}
			END {n=r/s*6; printf "| %s | %s | %.2f | %.2f | %.2f |\n", chain, name, sys/n, ns/n, cs/n}' "$work/stat.$i"
	done
	for p in "${procs[@]}"; do
		[ "$p" = "$backend" ] && continue
		kill "$p" 2>/dev/null || true
		while kill -0 "$p" 2>/dev/null; do sleep 0.05; done
	done
done
