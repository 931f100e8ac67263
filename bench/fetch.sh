#!/usr/bin/env bash
# Benchmark: download 10,000 mixed-size messages from one "postoffice serve"
# on loopback with "postoffice fetch", mpop and fetchmail, side by side in
# one run, next to the server's raw RETR throughput (bench/rawretr).
#
#   ./bench/fetch.sh [MESSAGES]        (default 10000)
#   BENCH_ONLY=maildir ./bench/fetch.sh  (the Maildir rows only: the
#                                      MDA rows start 3 x MESSAGES
#                                      processes; BENCH_SKIP_MDA=1 too)
#   BENCH_ONLY=mda ./bench/fetch.sh    (the MDA rows only)
#   BENCH_REPS=3 ./bench/fetch.sh      (every row 3 times, the order
#                                      reversed every other repetition:
#                                      A B C, C B A, A B C; the table
#                                      shows each row's median and range)
#
# Every client leaves the messages on the server (keep), so each one
# downloads the same maildrop: plain POP3 on loopback, USER/PASS,
# pipelining where the client has it. Two destinations:
#   maildir  postoffice fetch and mpop write a Maildir (fsync'd files);
#            fetchmail has no Maildir delivery of its own.
#   mda      each message piped to "cat > /dev/null", one process per
#            message: the only way fetchmail delivers without an MTA.
# Needs: go, python3, openssl, mpop, fetchmail (scripts/test.sh installs
# the last two). Prints a table; ratios are what to compare.
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-10000}
reps=${BENCH_REPS:-1}
work=$(mktemp -d /tmp/postoffice-bench-XXXXXX)
server_pid=""
cleanup() {
	if [ -n "$server_pid" ]; then kill "$server_pid" 2>/dev/null || true; wait "$server_pid" 2>/dev/null || true; fi
	rm -rf "$work"
}
trap cleanup EXIT

for p in mpop fetchmail python3 openssl; do
	command -v "$p" >/dev/null || { echo "bench/fetch.sh: $p is not installed" >&2; exit 1; }
done

go build -o "$work/postoffice" ./cmd/postoffice
go build -o "$work/rawretr" ./bench/rawretr

# The maildrop: N messages, deterministic, sizes mixed like a real
# mailbox: 60% 1-5 KB, 30% 5-50 KB, 9% 50-200 KB, 1% 0.5-1 MB; lines of
# text, some starting with a dot (stuffed on the wire).
maildir="$work/mail/alice/Maildir"
mkdir -p "$maildir"/{new,cur,tmp}
python3 - "$maildir/new" "$N" <<'EOF'
import os, random, sys
d, n = sys.argv[1], int(sys.argv[2])
rng = random.Random(1)
words = "the quick brown fox jumps over a lazy dog and some more words of mail".split()
for i in range(n):
    r = rng.random()
    size = (rng.randint(1000, 5000) if r < .6 else rng.randint(5000, 50000) if r < .9
            else rng.randint(50000, 200000) if r < .99 else rng.randint(500000, 1000000))
    lines = [f"From: sender{i}@example.org", "To: alice@example.org", f"Subject: message {i}",
             f"Message-ID: <{i}@bench.test>", "Date: Mon, 02 Jan 2006 15:04:05 +0000", ""]
    total = sum(len(l) + 1 for l in lines)
    while total < size:
        line = " ".join(rng.choice(words) for _ in range(12))
        if rng.random() < .02:
            line = "." + line
        lines.append(line)
        total += len(line) + 1
    with open(os.path.join(d, f"{1700000000+i}.M{i}P1.bench"), "w") as f:
        f.write("\n".join(lines) + "\n")
EOF
bytes=$(du -sb "$maildir/new" | cut -f1)

# The server.
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$work/key.pem" \
	-out "$work/cert.pem" -days 2 -subj /CN=localhost -addext subjectAltName=IP:127.0.0.1 2>/dev/null
echo "benchpass" | "$work/postoffice" user add -passwd-file "$work/passwd" -home "$work/mail/alice" alice >/dev/null
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
tlsport=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
cat >"$work/postoffice.toml" <<EOF
[server]
state_dir = "$work/state"
[pop3]
listen = ["127.0.0.1:$port"]
listen_tls = ["127.0.0.1:$tlsport"]
[tls]
cert = "$work/cert.pem"
key = "$work/key.pem"
[users]
passwd_file = "$work/passwd"
[maildir]
location = "$work/mail/{user}/Maildir"
[limits]
auth_failure_delay = "0s"
[log]
level = "warn"
EOF
"$work/postoffice" serve -config "$work/postoffice.toml" 2>"$work/server.log" &
server_pid=$!
for _ in $(seq 100); do
	python3 -c "import socket; socket.create_connection(('127.0.0.1',$port)).close()" 2>/dev/null && break
	sleep 0.1
done

results=()
mkdir -p "$work/home"
# measure NAME COMMAND...: runs the command with a fresh destination,
# records its wall time.
measure() {
	local name=$1
	shift
	rm -rf "$work/dest" "$work/fstate" "$work/home/uidls" "$work/home/fetchids"
	mkdir -p "$work/dest"/{new,cur,tmp}
	local start end
	start=$(date +%s.%N)
	local status=0
	"$@" >"$work/out.log" 2>&1 || status=$?
	if [ "$status" -ne 0 ]; then
		echo "bench/fetch.sh: $name failed (exit status $status):" >&2
		tail -20 "$work/out.log" >&2
		exit 1
	fi
	end=$(date +%s.%N)
	# A Maildir row must have delivered every message, once.
	local got
	got=$(find "$work/dest/new" "$work/dest/cur" -type f | wc -l)
	if [[ $name == *:maildir && $got -ne $N ]]; then
		echo "bench/fetch.sh: $name delivered $got messages, not $N" >&2
		exit 1
	fi
	results+=("$name $(echo "$end - $start" | bc -l)")
}

fetchconf() { # DESTLINE
	cat >"$work/fetch.toml" <<EOF
state_dir = "$work/fstate"
[[account]]
name = "bench"
server = "127.0.0.1"
port = $port
tls = "none"
user = "alice"
password = "benchpass"
keep = true
$1
EOF
}

mpopargs=(--host=127.0.0.1 --port="$port" --user=alice --passwordeval="echo benchpass" --auth=user
	--tls=off --pipelining=on --keep=on --only-new=off --uidls-file="$work/home/uidls" --received-header=off)

# Warm the page cache and the server's index once, unmeasured.
"$work/rawretr" -addr "127.0.0.1:$port" -user alice -pass benchpass >/dev/null

# The rows, each a function, run in order, then (with BENCH_REPS) again
# in reverse, so that no client always runs first or last.
row_raw() { measure "raw-RETR(pipelined)" "$work/rawretr" -addr "127.0.0.1:$port" -user alice -pass benchpass; }
row_fetch_maildir() {
	fetchconf "maildir = \"$work/dest\""
	measure "postoffice-fetch:maildir" "$work/postoffice" fetch -config "$work/fetch.toml" -quiet
}
row_mpop_maildir() { measure "mpop:maildir" env HOME="$work/home" mpop "${mpopargs[@]}" --delivery=maildir,"$work/dest"; }
row_fetch_mda() {
	fetchconf 'mda = ["/bin/sh", "-c", "cat > /dev/null"]'
	measure "postoffice-fetch:mda" "$work/postoffice" fetch -config "$work/fetch.toml" -quiet
}
row_mpop_mda() { measure "mpop:mda" env HOME="$work/home" mpop "${mpopargs[@]}" --delivery=mda,"cat > /dev/null"; }
# sslproto "": no STLS (the other clients run without TLS too).
cat >"$work/home/fetchmailrc" <<EOF
set no syslog
set idfile "$work/home/fetchids"
poll 127.0.0.1 protocol pop3 port $port uidl timeout 60
  user "alice" there with password "benchpass"
  keep fetchall no rewrite no mimedecode sslproto ""
  mda "cat > /dev/null"
EOF
chmod 600 "$work/home/fetchmailrc"
row_fetchmail_mda() {
	measure "fetchmail:mda" env HOME="$work/home" FETCHMAILHOME="$work/home" fetchmail --nodetach --nosyslog -f "$work/home/fetchmailrc"
}
only=${BENCH_ONLY:-all}
[ -n "${BENCH_SKIP_MDA:-}" ] && only=maildir
rows=(row_raw)
case $only in
all) rows+=(row_fetch_maildir row_mpop_maildir row_fetch_mda row_mpop_mda row_fetchmail_mda) ;;
maildir) rows+=(row_fetch_maildir row_mpop_maildir) ;;
mda) rows+=(row_fetch_mda row_mpop_mda row_fetchmail_mda) ;;
*) echo "bench/fetch.sh: BENCH_ONLY=$only: want maildir or mda" >&2; exit 2 ;;
esac

for ((rep = 1; rep <= reps; rep++)); do
	order=("${rows[@]}")
	if ((rep % 2 == 0)); then
		order=()
		for ((i = ${#rows[@]} - 1; i >= 0; i--)); do order+=("${rows[i]}"); done
	fi
	for row in "${order[@]}"; do "$row"; done
done

echo
echo "$N messages, $((bytes / 1000000)) MB on disk; $(nproc) cores; $(date -u +%F); $reps repetition(s)"
printf '%s\n' "${results[@]}" | python3 -c '
import statistics, sys
n, size, reps = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
times = {}
for line in sys.stdin:
    name, secs = line.split()
    times.setdefault(name, []).append(float(secs))
print("%-26s %9s %9s %10s %8s%s" % ("client", "seconds", "MB/s", "msgs/s", "vs-raw", "  range (s)" if reps > 1 else ""))
raw = statistics.median(times["raw-RETR(pipelined)"])
for name, ts in times.items():
    m = statistics.median(ts)
    rng = "  %.2f-%.2f" % (min(ts), max(ts)) if reps > 1 else ""
    print("%-26s %9.2f %9.1f %10.0f %7.2fx%s" % (name, m, size / m / 1e6, n / m, m / raw, rng))
' "$N" "$bytes" "$reps"
