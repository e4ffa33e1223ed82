#!/usr/bin/env bash
# Side-by-side controller benchmark (docs/benchmarks.md, "Controller
# throughput and latency"): runs ofbench against each peer controller
# running a learning switch, prints a markdown table and appends its rows
# to a CSV.
#
# Controllers (each on its own loopback port, pinned to core 0; ofbench
# pinned to core 1):
#   skyvisor   SKYVISOR --apps learning --listen 127.0.0.1:PORT --log-level warn  (skipped if missing)
#   ovs        ovs-testcontroller -O OpenFlow13 ptcp:PORT:127.0.0.1
#   osken      osken-manager ... testbed/peers/osken_l2.py
#   responder  ofbench -serve: the trivial responder (one packet-out per
#              packet-in, no learning): calibration, what ofbench can measure
# Tests per controller: latency with 1 switch (per-request round trip),
# latency with 16 switches, throughput with 16 switches.
#
# Usage: testbed/bench/controllers.sh [options]
#   -k PATH     skyvisor binary (default bin/skyvisor)
#   -c LIST     controllers to run, comma-separated (default skyvisor,ovs,osken,responder)
#   -n RUNS     measured runs per test (default 10)
#   -w RUNS     warmup runs per test (default 1)
#   -d DUR      run length, Go duration (default 1s)
#   -s N        switches for the 16-switch tests (default 16)
#   -M N        MACs per switch (default: ofbench's, 100000)
#   -p PORT     first loopback port (default 17020; four ports are used)
#   -o FILE     CSV the rows are appended to (default docs/results/controllers.csv;
#               "-" for none); the header is written only when the file is new
#               or empty, and a file with another header is refused, so a run
#               never wipes rows of earlier runs (column date tells runs apart)
#   -x ARGS     extra ofbench arguments for every test (e.g. "-b")
# Environment: OFBENCH=path to an ofbench binary (default: built from
# cmd/ofbench into a temp dir); SKYVISOR_ARGS overrides the skyvisor
# arguments ({PORT} is replaced by the port).
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
skyvisor=bin/skyvisor
controllers=skyvisor,ovs,osken,responder
runs=10
warmup=1
dur=1s
switches=16
macs=""
port0=17020
csv=docs/results/controllers.csv
extra=""

usage() { sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'; exit "${1:-0}"; }
while getopts "k:c:n:w:d:s:M:p:o:x:h" opt; do
	case $opt in
	k) skyvisor=$OPTARG ;;
	c) controllers=$OPTARG ;;
	n) runs=$OPTARG ;;
	w) warmup=$OPTARG ;;
	d) dur=$OPTARG ;;
	s) switches=$OPTARG ;;
	M) macs=$OPTARG ;;
	p) port0=$OPTARG ;;
	o) csv=$OPTARG ;;
	x) extra=$OPTARG ;;
	h) usage 0 ;;
	*) usage 2 ;;
	esac
done
shift $((OPTIND - 1))
[ $# -eq 0 ] || { echo "controllers.sh: unexpected arguments: $*" >&2; usage 2; }
if ((port0 < 17000 || port0 + 3 > 17099)); then
	echo "controllers.sh: -p $port0: ports must stay within 17000-17099" >&2
	exit 2
fi

cd "$repo"
header="controller,mode,switches,median_resp_s,mean_resp_s,min_resp_s,max_resp_s,stddev_resp_s,answered_pktin_s,rtt_ms,lost,timeouts,switch_errors,controller_cpu_pct,ofbench_cpu_pct,runs,duration_ms,window,macs,buffered,load1,date,commit"
# Rows are appended: refuse before measuring if the file's columns differ.
if [ "$csv" != "-" ] && [ -s "$csv" ] && [ "$(head -n 1 "$csv")" != "$header" ]; then
	echo "controllers.sh: $csv has other columns than this script writes; give another file with -o" >&2
	exit 2
fi
work=$(mktemp -d /tmp/ofbench-bench.XXXXXX)
pids=()
cleanup() {
	local pid
	for pid in "${pids[@]}"; do
		stop_pid "$pid"
	done
	rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# stop_pid ends one controller we started: TERM, then KILL after 5 s.
stop_pid() {
	local pid=$1 i
	kill -0 "$pid" 2>/dev/null || return 0
	kill -TERM "$pid" 2>/dev/null || true
	for ((i = 0; i < 50; i++)); do
		kill -0 "$pid" 2>/dev/null || break
		# A zombie (state Z) is gone for our purpose.
		[ "$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null)" = Z ] && break
		sleep 0.1
	done
	kill -KILL "$pid" 2>/dev/null || true
	wait "$pid" 2>/dev/null || true
}

# Pinning: controller on core 0, ofbench on core 1 (needs >= 2 CPUs).
if [ "$(nproc)" -ge 2 ] && command -v taskset >/dev/null; then
	pin_ctl=(taskset -c 0)
	pin_bench=(taskset -c 1)
else
	echo "note: fewer than 2 CPUs or no taskset: running unpinned" >&2
	pin_ctl=()
	pin_bench=()
fi

ofbench=${OFBENCH:-}
if [ -z "$ofbench" ]; then
	ofbench=$work/ofbench
	go build -o "$ofbench" ./cmd/ofbench
fi

# wait_port PORT PID: until 127.0.0.1:PORT accepts connections (30 s).
wait_port() {
	local port=$1 pid=$2 i
	for ((i = 0; i < 300; i++)); do
		if ! kill -0 "$pid" 2>/dev/null; then
			return 1
		fi
		if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
			return 0
		fi
		sleep 0.1
	done
	return 1
}

# field LINE KEY: the value of KEY=value in an ofbench summary line.
field() { tr ' ' '\n' <<<"$1" | sed -n "s/^$2=//p"; }

# cpu_ticks PID: user+system clock ticks used so far by the process.
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat" 2>/dev/null || echo 0; }

tests=("latency 1" "latency $switches" "throughput $switches")
declare -A cell
rows=()
notes=()
stamp=$(date -u +%Y-%m-%dT%H:%M:%SZ)
commit=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
hz=$(getconf CLK_TCK)

run_controller() {
	local name=$1 port=$2
	shift 2
	local log=$work/$name.log
	"${pin_ctl[@]}" "$@" >"$log" 2>&1 &
	local pid=$!
	pids+=("$pid")
	if ! wait_port "$port" "$pid"; then
		echo "$name: did not listen on 127.0.0.1:$port; log:" >&2
		sed 's/^/    /' "$log" >&2
		notes+=("$name: failed to start (see stderr)")
		stop_pid "$pid"
		return 0
	fi
	local t mode n out line t0 t1 wall0 wall1 cpu load
	for t in "${tests[@]}"; do
		read -r mode n <<<"$t"
		load=$(cut -d' ' -f1 /proc/loadavg)
		t0=$(cpu_ticks "$pid")
		wall0=$(date +%s%N)
		# shellcheck disable=SC2086 # $extra and $macs are word lists on purpose
		out=$("${pin_bench[@]}" "$ofbench" -c "127.0.0.1:$port" -m "$mode" -s "$n" -n "$runs" -w "$warmup" \
			-d "$dur" ${macs:+-M $macs} $extra 2>&1) || {
			echo "$name $mode $n switches: ofbench failed:" >&2
			sed 's/^/    /' <<<"$out" >&2
			cell["$name/$t"]="failed"
			continue
		}
		wall1=$(date +%s%N)
		t1=$(cpu_ticks "$pid")
		# Controller CPU use during the test, % of one core.
		cpu=$(awk -v d=$((t1 - t0)) -v hz="$hz" -v ns=$((wall1 - wall0)) 'BEGIN{printf "%.0f", 100*d/hz/(ns/1e9)}')
		line=$(grep '^ofbench: mode=' <<<"$out" | tail -1)
		echo "$name: $line ctl_cpu=$cpu% load1=$load" >&2
		local med ans rtt
		med=$(field "$line" median)
		ans=$(field "$line" answered)
		rtt=$(field "$line" rtt_ms)
		rows+=("$name,$mode,$n,$med,$(field "$line" mean),$(field "$line" min),$(field "$line" max),$(field "$line" stddev),$ans,$rtt,$(field "$line" lost),$(field "$line" timeouts),$(field "$line" switch_errors),$cpu,$(field "$line" self_cpu_pct),$(field "$line" runs),$(field "$line" duration_ms),$(field "$line" window),$(field "$line" macs),$(field "$line" buffered),$load,$stamp,$commit")
		if [ "$mode" = latency ] && [ "$n" = 1 ]; then
			cell["$name/$t"]=$(awk -v m="$med" -v a="$ans" -v r="$rtt" 'BEGIN{printf "%.1fk (%.1fk pkt-in/s, %.3f ms)", m/1000, a/1000, r}')
		else
			cell["$name/$t"]=$(awk -v m="$med" -v a="$ans" 'BEGIN{printf "%.1fk (%.1fk pkt-in/s)", m/1000, a/1000}')
		fi
	done
	stop_pid "$pid"
}

IFS=, read -r -a wanted <<<"$controllers"
for c in "${wanted[@]}"; do
	case $c in
	skyvisor)
		if [ ! -x "$skyvisor" ]; then
			echo "note: skyvisor binary $skyvisor missing: skipped (build it with 'make build')" >&2
			notes+=("skyvisor: skipped, binary $skyvisor missing")
			continue
		fi
		args=${SKYVISOR_ARGS:-"--apps learning --listen 127.0.0.1:{PORT} --log-level warn"}
		args=${args//\{PORT\}/$port0}
		# shellcheck disable=SC2086
		run_controller skyvisor "$port0" "$skyvisor" $args
		;;
	ovs)
		if ! command -v ovs-testcontroller >/dev/null; then
			notes+=("ovs: skipped, ovs-testcontroller not installed")
			continue
		fi
		p=$((port0 + 1))
		run_controller ovs "$p" ovs-testcontroller -O OpenFlow13 --unixctl="$work/ovs-testcontroller.ctl" \
			-vconsole:warn "ptcp:$p:127.0.0.1"
		;;
	osken)
		if ! command -v osken-manager >/dev/null; then
			notes+=("osken: skipped, osken-manager not installed")
			continue
		fi
		p=$((port0 + 2))
		run_controller osken "$p" osken-manager --ofp-listen-host 127.0.0.1 --ofp-tcp-listen-port "$p" \
			--default-log-level 30 "$repo/testbed/peers/osken_l2.py"
		;;
	responder)
		p=$((port0 + 3))
		run_controller responder "$p" "$ofbench" -serve "127.0.0.1:$p"
		;;
	*)
		echo "controllers.sh: unknown controller $c (want skyvisor, ovs, osken, responder)" >&2
		exit 2
		;;
	esac
done

declare -A label=([skyvisor]="Skyvisor learning switch" [ovs]="ovs-testcontroller" [osken]="os-ken learning switch (osken_l2.py)"
	[responder]="trivial responder (ofbench -serve; calibration, 1 response per packet-in)")
echo
echo "Median responses/s (flow-mods + packet-outs) over $runs runs of $dur; answered packet-ins/s and mean round trip in brackets."
echo
echo "| controller | latency, 1 switch | latency, $switches switches | throughput, $switches switches |"
echo "|---|---|---|---|"
for c in "${wanted[@]}"; do
	[ -n "${cell["$c/${tests[0]}"]:-}${cell["$c/${tests[1]}"]:-}${cell["$c/${tests[2]}"]:-}" ] || continue
	echo "| ${label[$c]:-$c} | ${cell["$c/${tests[0]}"]:-—} | ${cell["$c/${tests[1]}"]:-—} | ${cell["$c/${tests[2]}"]:-—} |"
done
for n in "${notes[@]}"; do
	echo
	echo "Note: $n"
done

if [ "$csv" != "-" ] && [ "${#rows[@]}" -gt 0 ]; then
	mkdir -p "$(dirname "$csv")"
	[ -s "$csv" ] || echo "$header" >"$csv"
	printf '%s\n' "${rows[@]}" >>"$csv"
	echo
	echo "appended ${#rows[@]} rows to $csv" >&2
fi
