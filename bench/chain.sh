#!/usr/bin/env bash
# Side-by-side benchmark of the two-hop chain, in one run on this machine:
#   direct     wrk → backend
#   nginx      wrk → nginx → nginx → backend (upstream keepalive)
#   gochain    wrk → httputil.ReverseProxy → httputil.ReverseProxy → backend (tuned Transport)
#   rampart    wrk → rampart gateway → rampart lb → backend (two processes, default security on)
#   allinone   the same topology in one `rampart run` process (gateway → load balancer in-process)
#   allinone-loopback  the same with `rampart run --loopback-hop` (that hop over loopback TCP)
# for a 64-byte GET and a 4 KB JSON POST, interleaved (1 2 3 4 5 1 2 3 4 5 …), with medians, spread
# and ratios. Servers are pinned to CPU 0 and wrk to CPU 1, the same for every configuration.
#
# Usage: bench/chain.sh            (ROUNDS=7 DURATION=5s CONNECTIONS=64 by default: many short rounds
#                                  give steadier medians on a shared host than a few long ones)
#        ROUNDS=11 DURATION=5s bench/chain.sh
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="/usr/local/go/bin:$PATH"
ROUNDS=${ROUNDS:-7}
DURATION=${DURATION:-5s}
CONNECTIONS=${CONNECTIONS:-64}
CONFIGS=${CONFIGS:-"direct nginx gochain rampart allinone allinone-loopback"}

need=()
command -v wrk >/dev/null 2>&1 || need+=(wrk)
command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || need+=(nginx)
if ((${#need[@]})); then
	sudo=""
	[ "$(id -u)" -eq 0 ] || sudo="sudo"
	echo "== installing ${need[*]} with apt-get"
	DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
NGINX=$(command -v nginx || echo /usr/sbin/nginx)

work=$(mktemp -d /tmp/rampart-bench.XXXXXX)
export BENCH_DIR=$work
# Every process started is recorded in $work/pids (start runs in command substitutions, whose
# variables do not reach this shell), and killed on exit.
cleanup() {
	if [ -f "$work/pids" ]; then
		while read -r p; do kill "$p" 2>/dev/null || true; done <"$work/pids"
	fi
	wait 2>/dev/null || true
}
trap cleanup EXIT

SERVER_CPU=0
LOAD_CPU=1
if [ "$(nproc)" -lt 2 ]; then LOAD_CPU=0; fi

echo "== building (results in $work)"
go build -o "$work/rampart" ./cmd/rampart
go build -o "$work/backend" ./bench/backend
go build -o "$work/goproxy" ./bench/goproxy
head -c 4096 /dev/zero | tr '\0' 'a' | sed 's/^\(.\{4070\}\).*/{"name":"bench","note":"\1"}/' >"$work/post.json"

# start NAME CMD...: runs CMD pinned to the server CPU, in the background, logging to $work/NAME.log.
start() {
	local name=$1
	shift
	taskset -c "$SERVER_CPU" "$@" >"$work/$name.log" 2>&1 &
	echo $! >>"$work/pids"
	echo $!
}

wait_http() {
	for _ in $(seq 1 200); do
		if curl -fsS -o /dev/null -H 'Origin: http://bench.example' "$1" 2>/dev/null; then return 0; fi
		sleep 0.05
	done
	echo "not ready: $1" >&2
	return 1
}

# cpu_ticks PID...: user+system clock ticks of the processes.
cpu_ticks() {
	local sum=0 p
	for p in "$@"; do
		local f
		read -r -a f <"/proc/$p/stat"
		sum=$((sum + f[13] + f[14]))
	done
	echo $sum
}

# rss_kib PID...: the largest peak RSS (VmHWM) among the processes.
rss_kib() {
	local max=0 p v
	for p in "$@"; do
		v=$(awk '/VmHWM/ {print $2}' "/proc/$p/status")
		((v > max)) && max=$v
	done
	echo $max
}

# shellcheck source=bench/nginx-conf.sh
source bench/nginx-conf.sh

# up CONFIG: starts the proxies of CONFIG; prints "URL PID..." (the PIDs whose CPU and RSS count).
up() {
	case $1 in
	direct) echo "http://127.0.0.1:9101/items $backend_pid" ;;
	nginx)
		local a b
		a=$(start nginx2 "$NGINX" -c "$(nginx_conf 2 127.0.0.1:9121 127.0.0.1:9101)")
		b=$(start nginx1 "$NGINX" -c "$(nginx_conf 1 127.0.0.1:9120 127.0.0.1:9121)")
		echo "http://127.0.0.1:9120/items $a $b"
		;;
	gochain)
		local a b
		a=$(start goproxy2 "$work/goproxy" -listen 127.0.0.1:9131 -target http://127.0.0.1:9101)
		b=$(start goproxy1 "$work/goproxy" -listen 127.0.0.1:9130 -target http://127.0.0.1:9131)
		echo "http://127.0.0.1:9130/items $a $b"
		;;
	rampart)
		local a b
		a=$(start rampart-lb "$work/rampart" lb -c bench/rampart-chain.yaml --log-level warn)
		b=$(start rampart-gw "$work/rampart" gateway -c bench/rampart-chain.yaml --log-level warn)
		echo "http://127.0.0.1:9110/items $a $b"
		;;
	allinone)
		local a
		a=$(start rampart-run "$work/rampart" run -c bench/rampart-chain.yaml --log-level warn)
		echo "http://127.0.0.1:9110/items $a"
		;;
	allinone-loopback)
		local a
		a=$(start rampart-run "$work/rampart" run -c bench/rampart-chain.yaml --log-level warn --loopback-hop)
		echo "http://127.0.0.1:9110/items $a"
		;;
	*)
		echo "unknown configuration $1" >&2
		exit 2
		;;
	esac
}

down() { # down PID...: stops the proxies (never the shared backend)
	local p
	for p in "$@"; do
		[ "$p" = "$backend_pid" ] && continue
		kill "$p" 2>/dev/null || true
		while kill -0 "$p" 2>/dev/null; do sleep 0.05; done
	done
}

measure() { # measure CONFIG WORKLOAD ROUND URL PID...
	local config=$1 workload=$2 round=$3 url=$4
	shift 4
	local body=""
	[ "$workload" = post4k ] && body="$work/post.json"
	# A short warm-up fills connection pools and lets the Go runtimes size their heaps.
	BENCH_POST_BODY=$body BENCH_ORIGIN=http://bench.example taskset -c "$LOAD_CPU" \
		wrk -t2 -c"$CONNECTIONS" -d2s -s bench/wrk-report.lua "$url" >/dev/null
	local before after line
	before=$(cpu_ticks "$@")
	line=$(BENCH_POST_BODY=$body BENCH_ORIGIN=http://bench.example taskset -c "$LOAD_CPU" \
		wrk -t2 -c"$CONNECTIONS" -d"$DURATION" --latency -s bench/wrk-report.lua "$url" | grep '^RESULT')
	after=$(cpu_ticks "$@")
	echo "$config $workload $round $line cpu_ticks=$((after - before)) hz=$(getconf CLK_TCK) rss_kib=$(rss_kib "$@")" | tee -a "$work/results.txt"
}

backend_pid=$(start backend "$work/backend" -listen 127.0.0.1:9101)
wait_http http://127.0.0.1:9101/items

echo "== $ROUNDS rounds of $DURATION per configuration and workload, $CONNECTIONS connections"
for round in $(seq 1 "$ROUNDS"); do
	for config in $CONFIGS; do
		read -r -a started <<<"$(up "$config")"
		url=${started[0]}
		procs=("${started[@]:1}")
		wait_http "$url"
		# A request that fails (403 from CORS or the WAF, say) would make the numbers meaningless.
		code=$(curl -s -o /dev/null -w '%{http_code}' -H 'Origin: http://bench.example' "$url")
		[ "$code" = 200 ] || { echo "$config answers $code, not 200" >&2; exit 1; }
		for workload in get64 post4k; do
			measure "$config" "$workload" "$round" "$url" "${procs[@]}"
		done
		down "${procs[@]}"
	done
done

echo
go run ./bench/report "$work/results.txt"
