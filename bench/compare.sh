#!/usr/bin/env bash
# postoffice against Dovecot, side by side in one run, on this machine.
#
#   ./bench/compare.sh [-reps N] [-quick] [-only SCENARIOS] [-out FILE]
#
# Builds postoffice, installs Dovecot's POP3 server from Debian if it is
# missing, generates the maildrops once (deterministic messages from
# "postoffice bench maildir": log-normal sizes, median 8 KiB, p95 100 KiB;
# LF line ends; lines that start with "."; no ",W=" sizes in the names),
# and then, N times (default 4) in the order A B B A A B B A ..., starts
# one server on the same loopback ports and the same Maildirs, runs every
# scenario of "postoffice bench" against it with -server-pid (its process
# tree's CPU time and PSS), and stops it. It prints, per figure, the median
# of each server and the ratio postoffice / Dovecot, next to the target.
#
# Both servers check {PLAIN} passwords from one passwd-file (Dovecot with
# its auth cache), serve the same Maildirs and use one ECDSA P-256
# certificate. Dovecot is tuned as its documentation recommends for
# performance: pop3-login with service_count = 0 and process_min_avail,
# pop3 with service_count = 100, pop3_no_flag_updates,
# maildir_very_dirty_syncs, auth cache.
#
# Scenarios (all verified: every size, terminator, dot-stuffed line and
# message checksum; one error aborts the run, no figure is reported):
#   login      32 clients, USER/PASS/STAT/QUIT, users with 10 messages
#   tls-login  the same over implicit TLS
#   stls-login the same after STLS
#   retr       4 clients, each RETRs a 10,000-message maildrop, window 8
#   top        the same with TOP n 10
#   pipeline   4 clients, batches of 32 NOOP/STAT/LIST n/UIDL n
#   idle       5,000 logged-in sessions held 20 s; PSS of the server tree
#   stat       connect-to-STAT on a fresh copy of a 100,000-message
#              maildrop: the first STAT (no index yet) and 4 repeated
#
# -quick shrinks every figure (for checking the script, not for results).
# -only login,retr runs only those scenarios. -out FILE also writes the
# table there. -work DIR keeps the generated maildrops there for the next
# run. -server BINARY measures that postoffice binary (an older build)
# with this version's load generator. Needs root on Debian 12 (apt, Dovecot's mail user),
# python3, openssl and about 4 GB in /tmp. Takes about 25 minutes.
set -euo pipefail
cd "$(dirname "$0")/.."

reps=4
server_bin=""
quick=""
only=""
out=""
keep=""
while [ $# -gt 0 ]; do
	case "$1" in
	-reps) reps=$2; shift 2 ;;
	-quick) quick=1; shift ;;
	-only) only=$2; shift 2 ;;
	-out) out=$2; shift 2 ;;
	-work) keep=$2; shift 2 ;;
	-server) server_bin=$2; shift 2 ;;
	*) echo "usage: $0 [-reps N] [-quick] [-only SCENARIOS] [-out FILE] [-work DIR] [-server BINARY]" >&2; exit 64 ;;
	esac
done

if ! command -v go >/dev/null 2>&1 && [ -x /usr/local/go/bin/go ]; then
	export PATH="/usr/local/go/bin:$PATH"
fi
if [ "$(id -u)" -ne 0 ]; then
	echo "compare.sh: run as root (it installs Dovecot and serves mail as an unprivileged user)" >&2
	exit 1
fi
for p in python3 openssl go; do
	command -v "$p" >/dev/null || { echo "compare.sh: $p is not installed" >&2; exit 1; }
done
if [ ! -x /usr/sbin/dovecot ] || ! dpkg -s dovecot-pop3d >/dev/null 2>&1; then
	echo "=== installing dovecot-pop3d (no service is started)"
	export DEBIAN_FRONTEND=noninteractive
	policy=/usr/sbin/policy-rc.d own_policy=""
	if [ ! -e "$policy" ]; then
		printf '#!/bin/sh\nexit 101\n' >"$policy"; chmod 755 "$policy"; own_policy=1
	fi
	apt-get -o DPkg::Lock::Timeout=300 -q update </dev/null
	status=0
	apt-get -o DPkg::Lock::Timeout=300 -q install -y --no-install-recommends dovecot-pop3d </dev/null || status=$?
	[ -n "$own_policy" ] && rm -f "$policy"
	[ "$status" -eq 0 ] || exit "$status"
fi

# Sizes of the run.
login_users=1000 idle_sessions=5000 retr_messages=10000 stat_messages=100000
warmup=2s duration=10s retr_duration=15s idle_hold=20s stat_count=5
if [ -n "$quick" ]; then
	login_users=64 idle_sessions=300 retr_messages=1000 stat_messages=5000
	warmup=1s duration=2s retr_duration=2s idle_hold=2s stat_count=3
	[ "$reps" -gt 2 ] && reps=2
fi
all_scenarios="login tls-login stls-login retr top pipeline idle stat"
scenarios=${only:-$all_scenarios}
scenarios=${scenarios//,/ }
password="bench pass 42"
mail_uid=65534 mail_gid=65534 # nobody: Dovecot refuses to serve mail as root

if [ -n "$keep" ]; then
	# A directory kept between runs: the generated maildrops are reused.
	work=$keep
	mkdir -p "$work"
	rm -rf "$work/results" "$work/mail" "$work"/dovecot-* "$work"/*.log "$work"/*.stderr
else
	work=$(mktemp -d /tmp/postoffice-compare-XXXXXX)
fi
chmod 755 "$work"
server_pid="" server_name=""
# Each server runs in a process group of its own (setsid), so that it
# can be stopped with all its children, and nothing else.
stop_server() {
	[ -n "$server_pid" ] || return 0
	kill -TERM "$server_pid" 2>/dev/null || true
	for _ in $(seq 1 300); do
		kill -0 "$server_pid" 2>/dev/null || break
		sleep 0.1
	done
	kill -KILL -- "-$server_pid" 2>/dev/null || true
	wait "$server_pid" 2>/dev/null || true
	server_pid=""
}
cleanup() {
	stop_server
	if [ -z "$keep" ]; then rm -rf "$work"; fi
}
trap cleanup EXIT
die() {
	echo "compare.sh: FAILED: $*" >&2
	for log in "$work"/dovecot.log "$work"/postoffice.log "$work"/*.stderr; do
		[ -s "$log" ] && { echo "--- last lines of $log" >&2; tail -n 15 "$log" >&2; }
	done
	exit 1
}

echo "=== building postoffice"
go build -o "$work/postoffice" ./cmd/postoffice
po="$work/postoffice"
# The server measured: this build, or another one given with -server (an
# older version, to measure a change; the load generator stays this one).
po_server=$po
if [ -n "$server_bin" ]; then
	cp "$server_bin" "$work/postoffice-server"
	po_server="$work/postoffice-server"
fi

read -r plain_port tls_port < <(python3 -c '
import socket
ports = []
socks = []
for _ in range(2):
    s = socket.socket(); s.bind(("127.0.0.1", 0)); socks.append(s); ports.append(s.getsockname()[1])
print(*ports)')

echo "=== generating maildrops in $work (once; both servers serve these same files)"
tmpl="$work/templates"
make_template() { # name messages seed
	if [ -f "$tmpl/$1.done" ] && [ "$(cat "$tmpl/$1.done")" = "$2 $3" ]; then return 0; fi
	rm -rf "${tmpl:?}/$1"
	"$po" bench maildir -dir "$tmpl/$1" -messages "$2" -seed "$3"
	echo "$2 $3" >"$tmpl/$1.done"
}
make_template small 10 1
make_template retr "$retr_messages" 2
if [[ " $scenarios " == *" stat "* ]]; then
	make_template stat "$stat_messages" 3
fi
# Users u0000..: 10-message maildrops (hard links to one template);
# r0..r3: the RETR maildrops; s0: the STAT maildrop, copied afresh
# (hard links) before each stat run. One passwd-file for both servers.
python3 - "$work" "$idle_sessions" "$password" "$mail_uid" "$mail_gid" <<'EOF'
import os, sys
work, n, password, uid, gid = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5]
def link_tree(src, dst):
    for sub in ("new", "cur", "tmp"):
        os.makedirs(os.path.join(dst, sub))
        for name in os.listdir(os.path.join(src, sub)):
            os.link(os.path.join(src, sub, name), os.path.join(dst, sub, name))
users = [f"u{i:04d}" for i in range(n)] + [f"r{i}" for i in range(4)] + ["s0"]
with open(os.path.join(work, "passwd"), "w") as f:
    for u in users:
        home = os.path.join(work, "mail", u)
        f.write(f"{u}:{{PLAIN}}{password}:{uid}:{gid}::{home}::\n")
        if u.startswith("u"):
            link_tree(os.path.join(work, "templates", "small"), os.path.join(home, "Maildir"))
        elif u.startswith("r"):
            link_tree(os.path.join(work, "templates", "retr"), os.path.join(home, "Maildir"))
EOF
chmod 644 "$work/passwd"
chown -R "$mail_uid:$mail_gid" "$work/mail" "$tmpl"

# One ECDSA P-256 certificate for both (postoffice's own default type; an
# RSA certificate makes every TLS handshake several times dearer).
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
	-subj /CN=localhost -addext subjectAltName=DNS:localhost,IP:127.0.0.1 \
	-keyout "$work/key.pem" -out "$work/cert.pem" 2>/dev/null
chmod 644 "$work/key.pem" # read by Dovecot's login processes; a throwaway key

cat >"$work/postoffice.toml" <<EOF
[server]
hostname = "bench.localhost"
implementation = "postoffice"
shutdown_timeout = "10s"
state_dir = "$work/po-state"
[log]
level = "info"
file = "$work/postoffice.log"
[pop3]
listen = ["127.0.0.1:$plain_port"]
listen_tls = ["127.0.0.1:$tls_port"]
[tls]
cert = "$work/cert.pem"
key = "$work/key.pem"
[limits]
max_connections = 12000
max_connections_per_ip = 12000
[users]
passwd_file = "$work/passwd"
[maildir]
location = "$work/mail/{user}/Maildir"
EOF

cat >"$work/dovecot.conf" <<EOF
protocols = pop3
listen = 127.0.0.1
base_dir = $work/dovecot-run
state_dir = $work/dovecot-state
instance_name = postoffice-compare-$$
log_path = $work/dovecot.log
ssl = yes
ssl_cert = <$work/cert.pem
ssl_key = <$work/key.pem
disable_plaintext_auth = no
auth_mechanisms = plain login
first_valid_uid = 1
passdb {
  driver = passwd-file
  args = scheme=PLAIN $work/passwd
}
userdb {
  driver = passwd-file
  args = $work/passwd
}
mail_location = maildir:$work/mail/%u/Maildir
pop3_uidl_format = %08Xu%08Xv
# The tuning of Dovecot's performance documentation.
pop3_no_flag_updates = yes
maildir_very_dirty_syncs = yes
auth_cache_size = 10M
auth_cache_ttl = 1 hour
auth_cache_negative_ttl = 1 hour
default_process_limit = 6000
default_client_limit = 12000
default_vsz_limit = 1G
mail_max_userip_connections = 10000
service pop3-login {
  inet_listener pop3 {
    address = 127.0.0.1
    port = $plain_port
  }
  inet_listener pop3s {
    address = 127.0.0.1
    port = $tls_port
    ssl = yes
  }
  service_count = 0
  process_min_avail = $(nproc)
  client_limit = 12000
}
service pop3 {
  service_count = 100
  process_limit = 6000
}
service anvil {
  client_limit = 12000
}
service auth {
  client_limit = 12000
}
EOF

ulimit -n "$(ulimit -Hn)"

wait_port() { # port: wait until it accepts connections, at most 20 s
	for _ in $(seq 1 200); do
		kill -0 "$server_pid" 2>/dev/null || return 1
		if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then return 0; fi
		sleep 0.1
	done
	return 1
}

start_server() { # dovecot | postoffice
	server_name=$1
	case "$1" in
	dovecot)
		setsid /usr/sbin/dovecot -F -c "$work/dovecot.conf" >>"$work/dovecot.stderr" 2>&1 &
		;;
	postoffice)
		setsid "$po_server" serve -config "$work/postoffice.toml" >>"$work/postoffice.stderr" 2>&1 &
		;;
	esac
	server_pid=$!
	wait_port "$plain_port" && wait_port "$tls_port" || die "$1 did not start"
	# Dovecot starts its login and auth processes on demand: one login
	# first, so that no measurement pays for that.
	"$po" bench login -q -addr "127.0.0.1:$plain_port" -user u0000 -password "$password" \
		-warmup 0 -duration 1s -count 1 >/dev/null || die "$1: first login failed"
}

results="$work/results"
mkdir -p "$results"
bench() { # label rep scenario flags...: one load-generator run, its JSON kept
	local label=$1 rep=$2 scenario=$3
	shift 3
	local file="$results/$server_name.$label.$rep.json"
	echo "--- $server_name $label (repetition $rep)"
	if ! "$po" bench "$scenario" -q -addr "127.0.0.1:$plain_port" -password "$password" \
		-ca "$work/cert.pem" -server-name localhost -server-pid "$server_pid" -json "$file" "$@" >"$work/bench.out" 2>&1; then
		cat "$work/bench.out" >&2
		die "$server_name $label: the run had errors or was disturbed; no figures reported"
	fi
	sed -n '2,6p' "$work/bench.out"
}

run_scenarios() { # rep
	local rep=$1 s
	for s in $scenarios; do
		case "$s" in
		login | stls-login)
			bench "$s" "$rep" "$s" -c 32 -user u%04d -users "$login_users" -warmup "$warmup" -duration "$duration" -expect 10 ;;
		tls-login)
			bench "$s" "$rep" "$s" -c 32 -user u%04d -users "$login_users" -warmup "$warmup" -duration "$duration" -expect 10 \
				-addr "127.0.0.1:$tls_port" ;;
		retr | top)
			bench "$s" "$rep" "$s" -c 4 -user r%d -users 4 -window 8 -warmup "$warmup" -duration "$retr_duration" -expect "$retr_messages" ;;
		pipeline)
			bench "$s" "$rep" pipeline -c 4 -user u%04d -users "$login_users" -window 32 -warmup "$warmup" -duration "$duration" ;;
		idle)
			# Dovecot starts a process for each session: under a load of
			# thousands, a login may take longer than the usual 30 s.
			bench "$s" "$rep" idle -c "$idle_sessions" -user u%04d -users "$idle_sessions" -duration "$idle_hold" -timeout 5m ;;
		stat)
			rm -rf "$work/mail/s0/Maildir"
			mkdir -p "$work/mail/s0"
			cp -al "$tmpl/stat" "$work/mail/s0/Maildir"
			chown "$mail_uid:$mail_gid" "$work/mail/s0" "$work/mail/s0/Maildir"
			bench "$s" "$rep" stat -user s0 -count "$stat_count" -expect "$stat_messages" ;;
		*) die "unknown scenario $s" ;;
		esac
	done
}

# Every maildrop is opened once by each server before anything is
# measured (Dovecot moves new/ to cur/ and builds its index; postoffice
# reads each message once for its size and writes its index).
for s in dovecot postoffice; do
	echo "=== priming $s"
	start_server "$s"
	# One login to each user (-once).
	"$po" bench login -q -once -addr "127.0.0.1:$plain_port" -password "$password" -c 16 \
		-user u%04d -users "$idle_sessions" -duration 30m -timeout 5m >"$work/bench.out" 2>&1 ||
		{ cat "$work/bench.out" >&2; die "priming $s failed"; }
	"$po" bench login -q -once -addr "127.0.0.1:$plain_port" -password "$password" -c 4 \
		-user r%d -users 4 -duration 30m -timeout 5m >"$work/bench.out" 2>&1 ||
		{ cat "$work/bench.out" >&2; die "priming $s failed"; }
	stop_server
done

for rep in $(seq 1 "$reps"); do
	# A B B A A B B A ...: Dovecot first in odd repetitions.
	if [ $((rep % 2)) -eq 1 ]; then order="dovecot postoffice"; else order="postoffice dovecot"; fi
	for s in $order; do
		echo "=== repetition $rep/$reps: $s"
		start_server "$s"
		run_scenarios "$rep"
		stop_server
	done
done

echo
echo "=== results: median of $reps repetitions each, postoffice / Dovecot"
python3 - "$results" "$reps" "$scenarios" <<'EOF' | tee "$work/table.md"
import glob, json, os, statistics, sys
results, reps, scenarios = sys.argv[1], int(sys.argv[2]), sys.argv[3].split()
def load(server, scenario):
    runs = []
    for path in sorted(glob.glob(os.path.join(results, f"{server}.{scenario}.*.json"))):
        with open(path) as f:
            runs.append(json.load(f))
    return runs
def median(runs, key):
    vals = [r[key] for r in runs if r.get(key) is not None]
    return statistics.median(vals) if vals else None
rows = [
    # scenario, key, label, target kind ("min" ratio >= t, "max" ratio <= t), target
    ("login", "ops_per_sec", "logins/s, 32 clients", "min", 3),
    ("login", "server_cpu_per_op_us", "server CPU per login (µs)", "max", 0.25),
    ("tls-login", "ops_per_sec", "implicit-TLS logins/s, 32 clients", "min", 1.2),
    ("tls-login", "server_cpu_per_op_us", "server CPU per TLS login (µs)", None, None),
    ("stls-login", "ops_per_sec", "STLS logins/s, 32 clients", None, None),
    ("retr", "ops_per_sec", "RETR messages/s, 4 clients", "min", 3),
    ("retr", "mb_per_sec", "RETR MB/s, 4 clients", "min", 3),
    ("retr", "server_cpu_per_op_us", "server CPU per RETR message (µs)", "max", 0.25),
    ("top", "ops_per_sec", "TOP messages/s, 4 clients", None, None),
    ("pipeline", "ops_per_sec", "pipelined commands/s, 4 clients", "min", 2),
    ("pipeline", "server_cpu_per_op_us", "server CPU per pipelined command (µs)", None, None),
    ("stat", "first_ms", "first STAT, 100k messages (ms)", "max", 0.3),
    ("stat", "repeated_median_ms", "repeated STAT, 100k messages (ms)", "max", 0.3),
    ("idle", "server_pss", "PSS with 5,000 idle sessions (MB)", "max", 0.05),
    ("idle", "pss_per_session", "PSS per idle session (KB)", None, None),
]
scale = {"server_pss": 1e-6, "pss_per_session": 1e-3}
print("| figure | postoffice | Dovecot | postoffice/Dovecot | target | met |")
print("|---|---:|---:|---:|---|---|")
missed = 0
for scenario, key, label, kind, target in rows:
    if scenario not in scenarios:
        continue
    po, dc = load("postoffice", scenario), load("dovecot", scenario)
    if len(po) != reps or len(dc) != reps:
        print(f"| {label} | missing runs ({len(po)}, {len(dc)} of {reps}) | | | | DISTURBED |")
        missed += 1
        continue
    a, b = median(po, key), median(dc, key)
    if a is None or b is None or b == 0:
        print(f"| {label} | {a} | {b} | | | DISTURBED (missing sample) |")
        missed += 1
        continue
    k = scale.get(key, 1)
    ratio = a / b
    goal, met = "", ""
    if kind == "min":
        goal, met = f"≥ {target}×", "yes" if ratio >= target else "NO"
    elif kind == "max":
        goal, met = f"≤ {target}×", "yes" if ratio <= target else "NO"
    print(f"| {label} | {a*k:,.1f} | {b*k:,.1f} | {ratio:.2f}× | {goal} | {met} |")
spread = []
for scenario in scenarios:
    for server in ("postoffice", "dovecot"):
        runs = load(server, scenario)
        key = {"stat": "repeated_median_ms", "idle": "server_pss"}.get(scenario, "ops_per_sec")
        vals = [r[key] for r in runs if r.get(key)]
        if len(vals) > 1:
            spread.append(f"{server} {scenario}: {min(vals):,.1f} .. {max(vals):,.1f}")
print()
print("Range over the repetitions (the machine is shared; compare medians):")
for s in spread:
    print("  " + s)
sys.exit(1 if missed else 0)
EOF
if [ -n "$out" ]; then cp "$work/table.md" "$out"; fi
echo
echo "machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(uname -sr);" \
	"$(/usr/sbin/dovecot --version | sed 's/^/Dovecot /'); $(go version | awk '{print $3}')"
