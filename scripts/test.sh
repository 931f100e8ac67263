#!/usr/bin/env bash
# The project's test command: ./scripts/test.sh
#
# Installs the real POP3 clients the interoperability tests drive,
# PostgreSQL 15 and HAProxy for the multi-node tests, and
# fail2ban for the check of its filter (Debian packages; only when
# missing), checks formatting, vets, builds, then runs every test with the
# race detector and POSTOFFICE_INTEROP=1, under which a test whose client
# program is missing fails instead of skipping.
#
# Runs as root on a fresh Debian 12 (CI runs it from .ci/run with CI=true
# and no standard input). Without root, the client programs must already be
# installed.
set -euo pipefail

cd "$(dirname "$0")/.."

# Go as installed on the project's machines, should PATH not have it.
if ! command -v go >/dev/null 2>&1 && [ -x /usr/local/go/bin/go ]; then
	export PATH="/usr/local/go/bin:$PATH"
fi
if ! command -v go >/dev/null 2>&1; then
	echo "test.sh: go is not installed" >&2
	exit 1
fi

step() { printf '\n=== %s\n' "$*"; }

# Debian packages the tests need, each with a command that shows it is
# there ("" = ask dpkg).
declare -A needs=(
	[fetchmail]=fetchmail
	[mpop]=mpop
	[curl]=curl
	[python3]=python3
	# Dovecot's POP3 server, which the pop3client and "postoffice fetch"
	# interoperability tests start as a throwaway instance of their own.
	[dovecot-pop3d]=""
	[fail2ban]=fail2ban-regex
	[ca-certificates]=""
	# The delivery tests: swaks speaks LMTP, Postfix relays SMTP to LMTP.
	[swaks]=swaks
	[postfix]=postfix
	# The PostgreSQL store's tests start a throwaway cluster of their own
	# (internal/pgtest: initdb as nobody in a temporary directory, a Unix
	# socket, stopped at the end); the multi-node tests put HAProxy in
	# front of the nodes.
	[postgresql-15]=""
	[haproxy]=haproxy
	# groff renders the man page (cmd/postoffice TestManPageRenders).
	[groff-base]=groff
	# systemd-socket-activate passes listening sockets the way systemd
	# does (cmd/postoffice TestSocketActivation).
	[systemd]=systemd-socket-activate
	# Prometheus scrapes the admin listener's /metrics and promtool lints
	# it (interop TestPrometheusScrapes).
	[prometheus]=promtool
	# testssl.sh audits the POP3S port and STLS (chaos TestTLSAudit).
	[testssl.sh]=testssl
)

missing=()
for pkg in "${!needs[@]}"; do
	cmd=${needs[$pkg]}
	if [ -n "$cmd" ]; then
		command -v "$cmd" >/dev/null 2>&1 && continue
	else
		dpkg -s "$pkg" >/dev/null 2>&1 && continue
	fi
	missing+=("$pkg")
done

if [ ${#missing[@]} -gt 0 ]; then
	step "installing ${missing[*]}"
	if [ "$(id -u)" -ne 0 ]; then
		echo "test.sh: missing ${missing[*]}; install them (apt-get install ${missing[*]}) or run as root" >&2
		exit 1
	fi
	export DEBIAN_FRONTEND=noninteractive
	# Postfix asks how to configure the system's mail; the tests run
	# private instances with their own configuration, so: none.
	echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections
	apt_opts=(-o DPkg::Lock::Timeout=300 -q)
	# A fresh machine may have no package lists at all.
	apt-get "${apt_opts[@]}" update </dev/null
	# Installing dovecot-pop3d would start the system's Dovecot on ports
	# 110 and 995 where an init system is there to do it; the tests need
	# no such daemon (they run their own on loopback ports), so package
	# scripts may start no service during this install. An existing
	# policy (containers ship one) is left as it is.
	policy=/usr/sbin/policy-rc.d
	own_policy=""
	if [ ! -e "$policy" ]; then
		printf '#!/bin/sh\n# written by postoffice scripts/test.sh for one apt-get install\nexit 101\n' >"$policy"
		chmod 755 "$policy"
		own_policy=1
	fi
	status=0
	apt-get "${apt_opts[@]}" install -y --no-install-recommends "${missing[@]}" </dev/null || status=$?
	if [ -n "$own_policy" ]; then rm -f "$policy"; fi
	[ "$status" -eq 0 ] || exit "$status"
fi

step "gofmt"
unformatted=$(gofmt -l .)
if [ -n "$unformatted" ]; then
	echo "test.sh: these files need gofmt:" >&2
	echo "$unformatted" >&2
	exit 1
fi

step "go vet"
go vet ./...

step "go build"
go build ./...
# The server is written for Linux first, but its binary builds for the
# BSDs and macOS too (Linux-only calls have fallbacks there): keep it so.
# One of them (a minute to compile the standard library) stands for all.
GOOS=freebsd GOARCH=amd64 go build -o /dev/null ./cmd/postoffice

step "go test"
# -count=1: the interop tests depend on programs outside the build cache's
# view, so results must never be cached.
POSTOFFICE_INTEROP=1 go test -race -count=1 -timeout 12m ./...

step "fuzz"
# Every fuzz target briefly (2 s each: there are 38), after its committed
# corpus (testdata/fuzz); the longer local campaign is in
# docs/reliability.md.
./scripts/fuzz.sh -time 2s
