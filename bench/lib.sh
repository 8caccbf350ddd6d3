# SPDX-License-Identifier: MIT
# shellcheck shell=bash
# shellcheck disable=SC2034  # SRV_* are this file's outputs to its callers
# bench/lib.sh - helpers for the benchmark scripts (sourced, bash).
#
# srv_start CMD...   start a server whose stdout announces "listening on
#                    HOST:PORT"; waits for that line (at most SRV_WAIT s) and
#                    sets SRV_PID and SRV_ADDR.  Returns 1 if it never came.
# srv_stop           SIGTERM to SRV_PID, wait at most SRV_WAIT s (then
#                    SIGKILL); sets SRV_STATUS to the exit status (or
#                    "killed" / "died:N").
# json_get KEY LINE  a value from poolsrv-bench's flat --json line.
# start_announced NAME CMD...
#                    run CMD in the background (output in $TMP/NAME.out and
#                    .err), wait at most READY_LIMIT s for its "listening on
#                    127.0.0.1:PORT" line (or "tls:127.0.0.1:PORT", a TLS
#                    listener); sets PID and PORT and appends PID
#                    to PIDS.  Returns 1, after showing its stderr, if the
#                    line never came.
# term_wait PID [LIMIT]
#                    SIGTERM to our child PID, then wait for it to exit: a
#                    join, bounded by a LIMIT-second timer (default 5), after
#                    which it gets SIGKILL.  Reaps it; sets STOP_STATUS to its
#                    exit status, "killed", or "gone" if it was not running.
# stop_pid PID       term_wait PID.
# pids_cleanup       for an EXIT trap: stop every PID in the array PIDS
#                    (term_wait, 2 s each) and remove the directory TMP.
# apt_ensure WHO PKG...
#                    install the Debian packages PKG with apt-get when root
#                    (WHO names the script in messages); otherwise, or if
#                    that fails, say what to run and return 1.
# warn_stale BIN...  warn on stderr for each BIN older than the static
#                    library it links (measuring old code by mistake).
# proc_cpu_us PID    user+system CPU time PID has used so far, in
#                    microseconds (all its threads, from /proc/PID/stat);
#                    empty if PID is gone.
# proc_ctxsw PID     "VOLUNTARY NONVOLUNTARY" context switches summed over
#                    PID's live threads (/proc/PID/task/*/status); empty if
#                    PID is gone.
# per_msg A B N      (B - A) / N to 3 decimals, or NA if any is missing or
#                    N is 0: a per-message figure from two readings.
# tls_make_certs DIR make throw-away ECDSA P-256 test certificates in DIR with
#                    openssl(1): ca.pem/ca.key (a test CA), server.pem/
#                    server.key (signed by it, for localhost, 127.0.0.1 and
#                    ::1; it names a CRL that no test fetches, since
#                    testssl rates a certificate without one HIGH),
#                    chain.pem (server then CA) and self.pem/self.key
#                    (self-signed, same names).  Valid for TLS_CERT_DAYS
#                    days (default 2).  Returns 1,
#                    after showing openssl's error, if that failed.

SRV_WAIT=${SRV_WAIT:-10}
SRV_TMP=""
SRV_FD=""
SRV_PID=""
SRV_ADDR=""
SRV_STATUS=""

srv_tmpdir() {
    if [[ -z $SRV_TMP ]]; then
        SRV_TMP=$(mktemp -d "${TMPDIR:-/tmp}/poolsrv-bench.XXXXXX")
    fi
}

srv_cleanup() {
    if [[ -n $SRV_PID ]]; then
        kill -KILL "$SRV_PID" 2>/dev/null || true
        wait "$SRV_PID" 2>/dev/null || true
        SRV_PID=""
    fi
    if [[ -n $SRV_TMP ]]; then
        rm -rf "$SRV_TMP"
        SRV_TMP=""
    fi
}

srv_start() {
    local line deadline
    srv_tmpdir
    rm -f "$SRV_TMP/out"
    mkfifo "$SRV_TMP/out"
    "$@" >"$SRV_TMP/out" 2>"$SRV_TMP/err" &
    SRV_PID=$!
    exec {SRV_FD}<"$SRV_TMP/out"
    SRV_ADDR=""
    deadline=$((SECONDS + SRV_WAIT))
    while ((SECONDS <= deadline)); do
        if ! IFS= read -r -t "$SRV_WAIT" line <&"$SRV_FD"; then
            break
        fi
        if [[ $line == "listening on "* ]]; then
            SRV_ADDR=${line#listening on }
            return 0
        fi
    done
    echo "error: '$*' did not announce 'listening on' within ${SRV_WAIT}s" >&2
    sed 's/^/  server: /' "$SRV_TMP/err" >&2
    srv_stop
    return 1
}

srv_stop() {
    SRV_STATUS=""
    if [[ -z $SRV_PID ]]; then
        return 0
    fi
    term_wait "$SRV_PID" "$SRV_WAIT"
    SRV_STATUS=$STOP_STATUS
    if [[ -n $SRV_FD ]]; then
        exec {SRV_FD}<&-
        SRV_FD=""
    fi
    SRV_PID=""
}

json_get() {
    local re="\"$1\":(\"[^\"]*\"|[^,}]*)"
    if [[ $2 =~ $re ]]; then
        local v=${BASH_REMATCH[1]}
        v=${v#\"}
        printf '%s\n' "${v%\"}"
    fi
}

start_announced() {
    local name=$1 i
    shift
    "$@" >"$TMP/$name.out" 2>"$TMP/$name.err" &
    PID=$!
    PIDS+=("$PID")
    PORT=""
    for ((i = 0; i < ${READY_LIMIT:-10} * 20; i++)); do
        PORT=$(sed -n 's/^listening on \(tls:\)\{0,1\}127\.0\.0\.1:\([0-9]*\)$/\2/p' "$TMP/$name.out")
        [[ -n $PORT ]] && return 0
        kill -0 "$PID" 2>/dev/null || break
        sleep 0.05
    done
    cat "$TMP/$name.err" >&2
    return 1
}

term_wait() {
    local pid=$1 limit=${2:-5} timer done_pid=""
    STOP_STATUS=gone
    kill -TERM "$pid" 2>/dev/null || return 0
    sleep "$limit" &
    timer=$!
    STOP_STATUS=0 # the `|| ...` forms keep callers under `set -e` alive
    wait -n -p done_pid "$pid" "$timer" 2>/dev/null || STOP_STATUS=$?
    if [[ $done_pid == "$timer" ]]; then
        kill -KILL "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
        STOP_STATUS=killed
    else
        # SIGKILL: a timer not yet exec'd is a copy of this shell, and any
        # other signal would run the caller's traps (EXIT cleanup) in it.
        kill -KILL "$timer" 2>/dev/null || true
        wait "$timer" 2>/dev/null || true
    fi
    return 0
}

stop_pid() {
    term_wait "$1"
}

pids_cleanup() {
    local pid
    for pid in "${PIDS[@]}"; do
        term_wait "$pid" 2
    done
    rm -rf "$TMP"
}

warn_stale() {
    local lib=${STALE_LIB:-lib/libpoolsrv.a} b
    [[ -e $lib ]] || return 0
    for b in "$@"; do
        [[ $lib -nt $b ]] &&
            echo "warning: $b is older than $lib, so it runs older library code: run make" >&2
    done
    return 0
}

apt_ensure() {
    local who=$1
    shift
    (($# == 0)) && return 0
    if [[ $(id -u) == 0 ]] && command -v apt-get >/dev/null; then
        echo "$who: installing $* with apt-get"
        export DEBIAN_FRONTEND=noninteractive
        apt-get install -y -q --no-install-recommends "$@" >/dev/null ||
            { apt-get update -q >/dev/null &&
                apt-get install -y -q --no-install-recommends "$@" >/dev/null; } ||
            { echo "$who: apt-get could not install $*" >&2 && return 1; }
    else
        echo "$who: needs $*: run sudo apt-get install $*" >&2
        return 1
    fi
}

proc_cpu_us() {
    local stat rest hz
    stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 0
    rest=${stat##*) } # the command name may hold spaces and parentheses
    hz=${CLK_TCK:=$(getconf CLK_TCK)}
    # After the name: $1 is field 3 (state), so utime (14) is $12, stime (15) $13.
    awk -v hz="$hz" '{ printf "%.0f\n", ($12 + $13) * 1e6 / hz }' <<<"$rest"
}

proc_ctxsw() {
    [[ -d /proc/$1/task ]] || return 0
    cat /proc/"$1"/task/*/status 2>/dev/null | awk '
        /^voluntary_ctxt_switches/ { v += $2 }
        /^nonvoluntary_ctxt_switches/ { n += $2 }
        END { print v + 0, n + 0 }'
}

per_msg() {
    awk -v a="$1" -v b="$2" -v n="$3" 'BEGIN {
        if (a == "" || b == "" || n == "" || n + 0 == 0) print "NA"; else printf "%.3f\n", (b - a) / n }'
}

tls_make_certs() {
    local d=$1 san='subjectAltName=DNS:localhost,IP:127.0.0.1,IP:::1'
    {
        openssl ecparam -name prime256v1 -genkey -noout -out "$d/ca.key" &&
            openssl req -x509 -new -key "$d/ca.key" -sha256 -days "${TLS_CERT_DAYS:-2}" -subj '/CN=poolsrv test CA' \
                -addext 'basicConstraints=critical,CA:TRUE' \
                -addext 'keyUsage=critical,keyCertSign,cRLSign' -out "$d/ca.pem" &&
            openssl ecparam -name prime256v1 -genkey -noout -out "$d/server.key" &&
            openssl req -new -key "$d/server.key" -subj '/CN=localhost' -out "$d/server.csr" &&
            printf '%s\n' "$san" 'basicConstraints=CA:FALSE' 'keyUsage=critical,digitalSignature' \
                'extendedKeyUsage=serverAuth' 'crlDistributionPoints=URI:http://localhost/test-ca.crl' \
                >"$d/server.ext" &&
            openssl x509 -req -in "$d/server.csr" -CA "$d/ca.pem" -CAkey "$d/ca.key" \
                -set_serial "0x$(openssl rand -hex 8)" -sha256 -days "${TLS_CERT_DAYS:-2}" -extfile "$d/server.ext" \
                -out "$d/server.pem" &&
            cat "$d/server.pem" "$d/ca.pem" >"$d/chain.pem" &&
            openssl ecparam -name prime256v1 -genkey -noout -out "$d/self.key" &&
            openssl req -x509 -new -key "$d/self.key" -sha256 -days "${TLS_CERT_DAYS:-2}" -subj '/CN=localhost' \
                -addext "$san" -out "$d/self.pem"
    } >"$d/openssl.log" 2>&1 || {
        echo "tls_make_certs: openssl failed:" >&2
        tail -5 "$d/openssl.log" >&2
        return 1
    }
}

# ------------------------------------------- redis-server against poolsrv-kv

# kv_start WORKERS: poolsrv-kv ($KV_BIN) on an ephemeral port; sets PORT, PID.
kv_start() {
    start_announced "kv-w$1" "$KV_BIN" --listen 127.0.0.1:0 --workers "$1" ||
        die "poolsrv-kv did not announce 'listening on' within ${READY_LIMIT:-10}s"
}

# kv_wait_ping PORT NAME: PING must answer PONG within READY_LIMIT seconds.
kv_wait_ping() {
    local i
    for ((i = 0; i < ${READY_LIMIT:-10} * 20; i++)); do
        [[ $(timeout 2 redis-cli -h 127.0.0.1 -p "$1" ping 2>/dev/null) == PONG ]] && return 0
        sleep 0.05
    done
    die "$2 did not answer PING on 127.0.0.1:$1 within ${READY_LIMIT:-10}s"
}

# redis_vs_kv_start: redis-server, then poolsrv-kv at each of WCOUNTS, on
# ephemeral ports (redis-server's: one the kernel gave poolsrv-kv, released),
# each answering PING.  Sets NAMES, PORTS and SPIDS, redis-server first.
# The caller provides TMP, PIDS, KV_BIN, WCOUNTS and die.
redis_vs_kv_start() {
    local w redis_port
    kv_start 1
    redis_port=$PORT
    stop_pid "$PID"
    NAMES=(redis-server) PORTS=() SPIDS=()
    redis-server --bind 127.0.0.1 --port "$redis_port" --save '' --appendonly no \
        --daemonize no --dir "$TMP" --logfile "$TMP/redis.log" &
    SPIDS+=($!) PORTS+=("$redis_port")
    PIDS+=($!)
    kv_wait_ping "$redis_port" redis-server
    for w in "${WCOUNTS[@]}"; do
        kv_start "$w"
        NAMES+=("poolsrv-kv-w$w") PORTS+=("$PORT") SPIDS+=("$PID")
        kv_wait_ping "$PORT" "poolsrv-kv --workers $w"
    done
}

# nginx_start PORT "LISTEN_OPTS" "SERVER_LINES" CHECK...: nginx ($NGINX) with
# $WORKERS worker processes serving `return 200 "hello\n"` on 127.0.0.1:PORT
# from a configuration written to $TMP/nginx (LISTEN_OPTS after the listen
# address, e.g. "ssl"; SERVER_LINES more directives of the server block);
# waits until the command CHECK... succeeds.  Sets PID and appends it to
# PIDS; dies naming nginx's own messages if it never answers.
nginx_start() {
    local port=$1 listen_opts=$2 server_lines=$3 i
    shift 3
    mkdir -p "$TMP/nginx"
    cat >"$TMP/nginx/nginx.conf" <<CONF
worker_processes $WORKERS;
daemon off;
pid $TMP/nginx/nginx.pid;
error_log $TMP/nginx/error.log warn;
events { worker_connections 4096; }
http {
    access_log off;
    keepalive_timeout 65;
    keepalive_requests 100000000;
    client_body_temp_path $TMP/nginx/body;
    proxy_temp_path $TMP/nginx/proxy;
    fastcgi_temp_path $TMP/nginx/fastcgi;
    uwsgi_temp_path $TMP/nginx/uwsgi;
    scgi_temp_path $TMP/nginx/scgi;
    default_type text/plain;
    server {
        listen 127.0.0.1:$port${listen_opts:+ $listen_opts};
$server_lines
        location / { return 200 "hello\n"; }
    }
}
CONF
    "$NGINX" -p "$TMP/nginx" -c "$TMP/nginx/nginx.conf" -e "$TMP/nginx/error.log" \
        >"$TMP/nginx.out" 2>&1 &
    PID=$!
    PIDS+=("$PID")
    for ((i = 0; i < READY_LIMIT * 20; i++)); do
        "$@" 2>/dev/null && return 0
        kill -0 "$PID" 2>/dev/null || break
        sleep 0.05
    done
    cat "$TMP/nginx.out" "$TMP/nginx/error.log" >&2 2>/dev/null
    die "nginx did not answer on 127.0.0.1:$port within ${READY_LIMIT}s"
}

# wrk_parse OUTPUT: wrk --latency's figures into WRK_RPS, WRK_AVG, WRK_P50,
# WRK_P99, WRK_NON2XX (0 if none) and WRK_ERRS (the socket errors, "none" if
# none, spaces as _); WRK_RPS is empty if the output has no rate.
wrk_parse() {
    WRK_RPS=$(awk '/^Requests\/sec:/ {print $2}' <<<"$1")
    WRK_AVG=$(awk '$1 == "Latency" {print $2; exit}' <<<"$1")
    WRK_P50=$(awk '$1 == "50%" {print $2}' <<<"$1")
    WRK_P99=$(awk '$1 == "99%" {print $2}' <<<"$1")
    WRK_NON2XX=$(awk '/Non-2xx/ {print $NF}' <<<"$1")
    WRK_NON2XX=${WRK_NON2XX:-0}
    WRK_ERRS=$(awk -F'Socket errors: ' 'NF > 1 {print $2}' <<<"$1")
    WRK_ERRS=${WRK_ERRS:-none}
    WRK_ERRS=${WRK_ERRS// /_}
}
