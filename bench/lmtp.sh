#!/usr/bin/env bash
# LMTP delivery throughput: postoffice against Dovecot's LMTP server, on
# the same machine, in the same run, both syncing every message to disk.
#
#   ./bench/lmtp.sh [MESSAGES]
#
# For each message size (1 KiB, 100 KiB) and number of concurrent senders
# (1, 16), Postfix's smtp-source (-L: LMTP; -d: connections are reused,
# as Postfix's lmtp client does) delivers MESSAGES messages (default 1000
# for 1 KiB, 300 for 100 KiB) to one user, to postoffice and to Dovecot in
# turn, ROUNDS times (default 3), each time into an empty Maildir. The
# figures are the medians of deliveries per second, and the ratio
# postoffice / Dovecot. Disk-bound figures vary a lot on a shared machine;
# the alternation and the medians keep the ratio meaningful.
#
# Dovecot runs with mail_fsync = always (fsync of each message and index
# file, its safest setting); postoffice always syncs the message, the
# index and the new/ directory before it answers 250. Both deliver over
# TCP on loopback to a static user.
#
# Needs root on Debian 12: it installs postfix (for smtp-source) and
# dovecot-lmtpd from Debian when they are missing, and starts private
# instances on loopback ports under a temporary directory it removes.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v go >/dev/null 2>&1 && [ -x /usr/local/go/bin/go ]; then
	export PATH="/usr/local/go/bin:$PATH"
fi
if [ "$(id -u)" -ne 0 ]; then
	echo "bench/lmtp.sh: run as root (it installs packages and runs Dovecot)" >&2
	exit 1
fi

missing=()
command -v smtp-source >/dev/null 2>&1 || missing+=(postfix)
[ -x /usr/lib/dovecot/lmtp ] || missing+=(dovecot-lmtpd)
if [ ${#missing[@]} -gt 0 ]; then
	export DEBIAN_FRONTEND=noninteractive
	echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections
	apt-get -o DPkg::Lock::Timeout=300 -q update </dev/null
	apt-get -o DPkg::Lock::Timeout=300 -q install -y --no-install-recommends "${missing[@]}" </dev/null
fi

work=$(mktemp -d /tmp/postoffice-bench-XXXXXX)
chmod 755 "$work"
pids=()
cleanup() {
	[ -f "$work/dovecot.conf" ] && doveadm -c "$work/dovecot.conf" stop >/dev/null 2>&1 || true
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	rm -rf "$work"
}
trap cleanup EXIT

free_port() {
	python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}
wait_port() {
	for _ in $(seq 1 200); do
		if python3 -c "import socket,sys; socket.create_connection(('127.0.0.1',$1),1)" 2>/dev/null; then return 0; fi
		sleep 0.05
	done
	echo "bench/lmtp.sh: nothing listens on port $1" >&2
	return 1
}

echo "building postoffice"
go build -o "$work/postoffice" ./cmd/postoffice

# postoffice: user "bench", maildrops under $work/po.
po_lmtp=$(free_port)
po_pop3=$(free_port)
echo "bench:{PLAIN}bench:::" >"$work/passwd"
cat >"$work/postoffice.toml" <<TOML
[server]
hostname = "bench.example.org"
state_dir = "$work/state"
[log]
level = "warn"
file = "$work/postoffice.log"
[pop3]
listen = ["127.0.0.1:$po_pop3"]
listen_tls = []
[lmtp]
listen = ["127.0.0.1:$po_lmtp"]
max_connections = 100
[users]
passwd_file = "$work/passwd"
[maildir]
location = "$work/po/{user}/Maildir"
TOML
"$work/postoffice" serve -config "$work/postoffice.toml" &
pids+=($!)
wait_port "$po_lmtp"

# Dovecot: LMTP only, static user "bench" (uid mail), maildrops under
# $work/dc, every write synced.
dc_lmtp=$(free_port)
mkdir -p "$work/dc" "$work/dovecot-run"
chown mail:mail "$work/dc"
cat >"$work/dovecot.conf" <<CONF
base_dir = $work/dovecot-run
log_path = $work/dovecot.log
protocols = lmtp
listen = 127.0.0.1
ssl = no
first_valid_uid = 8
mail_location = maildir:$work/dc/%n/Maildir
mail_fsync = always
passdb {
  driver = static
  args = nopassword=y
}
userdb {
  driver = static
  args = uid=mail gid=mail home=$work/dc/%n
}
service lmtp {
  inet_listener lmtp {
    address = 127.0.0.1
    port = $dc_lmtp
  }
  unix_listener lmtp {
    mode = 0600
  }
}
CONF
dovecot -c "$work/dovecot.conf"
wait_port "$dc_lmtp"

# run NAME PORT SIZE SESSIONS MESSAGES: deliveries per second.
run() {
	local name=$1 port=$2 size=$3 sessions=$4 messages=$5
	rm -rf "$work/po/bench" "$work/dc/bench"
	# Warm up: the first delivery creates the Maildir.
	smtp-source -L -d -s 1 -m 1 -l "$size" -f sender@example.net -t bench@example.org "127.0.0.1:$port"
	local start end
	start=$(date +%s.%N)
	smtp-source -L -d -s "$sessions" -m "$messages" -l "$size" -f sender@example.net -t bench@example.org "127.0.0.1:$port"
	end=$(date +%s.%N)
	local got
	got=$(find "$work/$name/bench/Maildir/new" "$work/$name/bench/Maildir/cur" -type f | wc -l)
	if [ "$got" -ne $((messages + 1)) ]; then
		echo "bench/lmtp.sh: $name stored $got messages, want $((messages + 1))" >&2
		exit 1
	fi
	python3 -c "print(f'{$messages / ($end - $start):.0f}')"
}

msgs=${1:-}
rounds=${ROUNDS:-3}
median() { python3 -c 'import statistics,sys; print(f"{statistics.median(float(x) for x in sys.argv[1:]):.0f}")' "$@"; }
echo "each figure: the median of $rounds rounds, postoffice and Dovecot alternating"
printf '\n%-10s %-8s %14s %14s %8s\n' size senders "postoffice/s" "dovecot/s" ratio
for size in 1024 102400; do
	n=${msgs:-$([ "$size" -eq 1024 ] && echo 1000 || echo 300)}
	for sessions in 1 16; do
		pos=() dcs=()
		for _ in $(seq 1 "$rounds"); do
			pos+=("$(run po "$po_lmtp" "$size" "$sessions" "$n")")
			dcs+=("$(run dc "$dc_lmtp" "$size" "$sessions" "$n")")
		done
		po=$(median "${pos[@]}")
		dc=$(median "${dcs[@]}")
		ratio=$(python3 -c "print(f'{$po / $dc:.2f}')")
		printf '%-10s %-8s %14s %14s %7sx   (postoffice %s; dovecot %s)\n' "$((size / 1024)) KiB" "$sessions" "$po" "$dc" "$ratio" "${pos[*]}" "${dcs[*]}"
	done
done
