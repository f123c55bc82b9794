# shellcheck shell=bash
#! Shared by scripts/bench-throughput and scripts/bench-memory: two network namespaces joined
#! by a veth pair (198.18.0.0/15 and 2001:2::/48 only, no default route), processes started
#! in them, and cleanup of both on exit, also on failure or interrupt.
#
#   BENCH_NS_SRV  (server side): v0 = 198.18.0.1/24, 2001:2::1/64
#   BENCH_NS_LOAD (client side): v1 = 198.18.0.2/24, 2001:2::2/64
#
# Nothing is created in the root namespace (the veth pair is made inside the namespaces),
# and only processes whose pids this script recorded are killed.

BENCH_ID="mrl-$$"
BENCH_NS_SRV="$BENCH_ID-srv"
BENCH_NS_LOAD="$BENCH_ID-load"
BENCH_TMP="$(mktemp -d "/tmp/$BENCH_ID.XXXXXX")"
BENCH_PIDS=()

bench_cleanup() {
    local pid
    for pid in "${BENCH_PIDS[@]}"; do
        kill "$pid" 2>/dev/null || true
    done
    for pid in "${BENCH_PIDS[@]}"; do
        wait "$pid" 2>/dev/null || true
    done
    ip netns del "$BENCH_NS_LOAD" 2>/dev/null || true
    ip netns del "$BENCH_NS_SRV" 2>/dev/null || true
    if [[ -n "${BENCH_KEEP_TMP:-}" ]]; then
        echo "logs kept in $BENCH_TMP" >&2
    else
        rm -rf "$BENCH_TMP"
    fi
}

bench_die() {
    echo "${0##*/}: $*" >&2
    exit 1
}

# Creates the two namespaces and the link between them.
bench_netns_up() {
    [[ $EUID -eq 0 ]] || bench_die "needs root (network namespaces)"
    trap bench_cleanup EXIT
    trap 'exit 130' INT TERM
    ip netns add "$BENCH_NS_SRV"
    ip netns add "$BENCH_NS_LOAD"
    ip -n "$BENCH_NS_SRV" link add v0 type veth peer name v1 netns "$BENCH_NS_LOAD"
    ip -n "$BENCH_NS_SRV" addr add 198.18.0.1/24 dev v0
    ip -n "$BENCH_NS_SRV" addr add 2001:2::1/64 dev v0 nodad
    ip -n "$BENCH_NS_LOAD" addr add 198.18.0.2/24 dev v1
    ip -n "$BENCH_NS_LOAD" addr add 2001:2::2/64 dev v1 nodad
    local ns
    for ns in "$BENCH_NS_SRV" "$BENCH_NS_LOAD"; do
        ip -n "$ns" link set lo up
    done
    ip -n "$BENCH_NS_SRV" link set v0 up
    ip -n "$BENCH_NS_LOAD" link set v1 up
}

# bench_in NS CMD...: runs CMD inside namespace NS (at niceness BENCH_NICE, default 0).
bench_in() {
    local ns="$1"
    shift
    ip netns exec "$ns" nice -n "${BENCH_NICE:-0}" "$@"
}

# bench_start NS LOG CMD...: starts CMD in NS without the right to set the clock, at
# niceness BENCH_NICE (default 0), in the background; its pid (`ip netns exec`, nice and
# setpriv all exec) goes into BENCH_LAST_PID and the cleanup list.
bench_start() {
    local ns="$1" log="$2"
    shift 2
    ip netns exec "$ns" nice -n "${BENCH_NICE:-0}" \
        setpriv --bounding-set=-sys_time --inh-caps=-sys_time "$@" \
        >"$log" 2>&1 &
    BENCH_LAST_PID=$!
    BENCH_PIDS+=("$BENCH_LAST_PID")
}

# bench_stop PID: stops one process this script started.
bench_stop() {
    kill "$1" 2>/dev/null || true
    wait "$1" 2>/dev/null || true
}

# bench_cpu_ticks PID: user + system CPU time of PID in clock ticks.
bench_cpu_ticks() {
    awk '{ print $14 + $15 }' "/proc/$1/stat" 2>/dev/null || echo 0
}

# bench_hwm_kib PID: peak resident set size (VmHWM) in KiB.
bench_hwm_kib() {
    awk '/^VmHWM:/ { print $2 }' "/proc/$1/status"
}

# bench_rss_kib PID: current resident set size (VmRSS) in KiB.
bench_rss_kib() {
    awk '/^VmRSS:/ { print $2 }' "/proc/$1/status"
}

# bench_wait_answer TARGET: waits (at most 10 s) until the server at TARGET answers.
bench_wait_answer() {
    local target="$1" i
    for ((i = 0; i < 50; i++)); do
        if bench_in "$BENCH_NS_LOAD" "$BENCH_LOAD" --target "$target" --rate 20 \
            --duration 0.1 --drain-ms 100 --json 2>/dev/null | grep -q '"answered":[1-9]'; then
            return 0
        fi
        sleep 0.2
    done
    return 1
}

# bench_udp NS: "InDatagrams RcvbufErrors" of namespace NS (/proc/net/snmp).
bench_udp() {
    ip netns exec "$1" awk '/^Udp:/ { n++; if (n == 2) print $2, $6 }' /proc/net/snmp
}

# bench_backlog_drops: packets dropped by full per-CPU input backlogs, whole machine
# (/proc/net/softnet_stat, second column, hex).
bench_backlog_drops() {
    local sum=0 v
    while read -r _ v _; do
        sum=$((sum + 16#$v))
    done </proc/net/softnet_stat
    echo "$sum"
}
