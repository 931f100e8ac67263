#!/usr/bin/env bash
# bench/cluster.sh: the PostgreSQL store against the Maildir store, in one
# run, with the project's load generator ("postoffice bench"):
#
#   maildir   one node, store.backend = "maildir"
#   pg1       one node, store.backend = "postgres"
#   pg2       two nodes on the same database, each driven by its own
#             load generator (half the clients, half the users), summed
#
# for two scenarios: "login" (USER, PASS, STAT, QUIT; {PLAIN} passwords so
# that hashing does not hide the store) and "retr" (RETR every message of
# a maildrop, pipelined, verified). The database is a throwaway PostgreSQL
# cluster (fsync and synchronous_commit on, as in production) in the work
# directory, on a Unix socket. Everything runs on this one machine: the
# figures show where the database's CPU goes, not how a real cluster of
# machines scales (see docs/performance.md).
#
# usage: bench/cluster.sh [-users N] [-messages N] [-c N] [-duration D] [-out FILE]
set -euo pipefail
cd "$(dirname "$0")/.."

users=40
messages=50
conc=8
duration=10s
out=""
while [ $# -gt 0 ]; do
	case "$1" in
	-users) users=$2; shift 2 ;;
	-messages) messages=$2; shift 2 ;;
	-c) conc=$2; shift 2 ;;
	-duration) duration=$2; shift 2 ;;
	-out) out=$2; shift 2 ;;
	*) echo "usage: $0 [-users N] [-messages N] [-c N] [-duration D] [-out FILE]" >&2; exit 64 ;;
	esac
done

pgbin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
[ -x "$pgbin/initdb" ] || { echo "bench/cluster.sh: PostgreSQL server programs not found (apt-get install postgresql-15)" >&2; exit 1; }

work=$(mktemp -d /tmp/po-cluster-bench.XXXXXX)
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	rm -rf "$work"
}
trap cleanup EXIT

po=$work/postoffice
go build -o "$po" ./cmd/postoffice

# The maildrops: one deterministic benchmark maildrop, hard-linked for
# every user, and a passwd-file.
"$po" bench maildir -dir "$work/tmpl" -messages "$messages" -seed 1 >/dev/null
mkdir -p "$work/mail"
: >"$work/passwd"
for ((i = 0; i < users; i++)); do
	mkdir -p "$work/mail/user$i"
	cp -al "$work/tmpl" "$work/mail/user$i/Maildir"
	echo "user$i:{PLAIN}benchpass::::$work/home::" >>"$work/passwd"
done

# PostgreSQL, as an unprivileged user when run as root.
runas=()
if [ "$(id -u)" -eq 0 ]; then runas=(runuser -u nobody --); chown nobody "$work"; fi
mkdir -p "$work/pg" && [ "$(id -u)" -ne 0 ] || chown nobody "$work/pg"
"${runas[@]}" "$pgbin/initdb" -D "$work/pg/data" -A trust -U postgres -E UTF8 --locale=C >/dev/null
"${runas[@]}" "$pgbin/postgres" -D "$work/pg/data" -c listen_addresses= -c unix_socket_directories="$work/pg" \
	-c shared_buffers=256MB -c max_connections=100 >"$work/pg/log" 2>&1 &
pids+=($!)
for _ in $(seq 100); do [ -S "$work/pg/.s.PGSQL.5432" ] && break; sleep 0.1; done
"${runas[@]}" "$pgbin/psql" -h "$work/pg" -U postgres -qc "CREATE DATABASE postoffice" postgres
dsn="host=$work/pg user=postgres dbname=postoffice"

port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
config() { # name store port
	cat >"$work/$1.toml" <<TOML
[server]
hostname = "$1"
state_dir = "$work/state"
[log]
level = "warn"
[pop3]
listen = ["127.0.0.1:$3"]
listen_tls = []
[users]
passwd_file = "$work/passwd"
[store]
backend = "$2"
[maildir]
location = "$work/mail/{user}/Maildir"
[postgres]
dsn = "$dsn"
max_conns = 20
[limits]
max_connections_per_ip = 1000
auth_failure_delay = "0s"
[auth]
penalty_base = "0s"
penalty_max = "0s"
TOML
}
pm=$(port); p1=$(port); p2=$(port)
config maildir maildir "$pm"
config pg1 postgres "$p1"
config pg2 postgres "$p2"
"$po" db migrate -config "$work/pg1.toml" >/dev/null
"$po" migrate -q -config "$work/pg1.toml" -to postgres -all

start() { "$po" serve -config "$work/$1.toml" 2>>"$work/$1.log" & pids+=($!); }
start maildir; start pg1; start pg2
sleep 1

# run NAME SCENARIO: one or two load generators; prints ops/s and MB/s.
bench() { # port first-user users clients scenario json
	"$po" bench "$5" -addr "127.0.0.1:$1" -first-user "$2" -users "$3" -c "$4" -password benchpass \
		-duration "$duration" -warmup 2s -q -json "$6" >/dev/null
}
summary() { python3 - "$@" <<'PY'
import json, sys
ops = mb = 0.0
errors = 0
for f in sys.argv[1:]:
    r = json.load(open(f))
    ops += r.get("ops_per_sec", 0) or 0
    mb += r.get("mb_per_sec", 0) or 0
    errors += r.get("errors", 0) or 0
print(f"{ops:10.1f} ops/s {mb:8.1f} MB/s {errors} errors")
PY
}
results=""
for scenario in login retr; do
	bench "$pm" 0 "$users" "$conc" "$scenario" "$work/m.json"
	line="maildir $scenario $(summary "$work/m.json")"; echo "$line"; results+="$line"$'\n'
	bench "$p1" 0 "$users" "$conc" "$scenario" "$work/a.json"
	line="pg1     $scenario $(summary "$work/a.json")"; echo "$line"; results+="$line"$'\n'
	half=$((users / 2))
	bench "$p1" 0 "$half" "$((conc / 2))" "$scenario" "$work/b1.json" &
	b=$!
	bench "$p2" "$half" "$half" "$((conc / 2))" "$scenario" "$work/b2.json"
	wait "$b"
	line="pg2     $scenario $(summary "$work/b1.json" "$work/b2.json")"; echo "$line"; results+="$line"$'\n'
done
if [ -n "$out" ]; then printf '%s' "$results" >"$out"; fi
