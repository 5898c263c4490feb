#!/usr/bin/env bash
# start-postgres.sh: make sure a PostgreSQL server answers on 127.0.0.1:5432
# (PGPORT overrides the port) and lets the user postgres connect from
# 127.0.0.1 without a password (trust), as the tests of
# internal/store/postgres expect with their default DSN
# postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable.
#
# Idempotent; prints what it did:
#   1. if such a server already answers and lets postgres in: nothing;
#   2. installs the Debian package postgresql if the server programs are
#      missing;
#   3. if nothing answers: starts the Debian cluster on that port
#      (pg_ctlcluster), or, when there is none, a cluster of its own made
#      with initdb in ${TMPDIR:-/tmp}/taxlink-postgres-PORT (kept, so a
#      second run just starts it again);
#   4. if postgres cannot log in from 127.0.0.1 without a password: puts
#      trust lines for postgres from 127.0.0.1 and ::1 first in the
#      cluster's pg_hba.conf and reloads it.
# Needs root (or the postgres user, or sudo) and, to install, apt-get.
set -euo pipefail

port=${PGPORT:-5432}
host=127.0.0.1
export DEBIAN_FRONTEND=noninteractive

say() { echo "start-postgres: $*"; }
die() {
	echo "start-postgres: $*" >&2
	exit 1
}

# as_root and as_postgres run a command as root / as the postgres user.
as_root() {
	if [ "$(id -u)" -eq 0 ]; then
		"$@"
	elif command -v sudo >/dev/null 2>&1; then
		sudo "$@"
	else
		die "not root and no sudo to run: $*"
	fi
}
as_postgres() {
	if [ "$(id -un)" = postgres ]; then
		"$@"
	elif [ "$(id -u)" -eq 0 ]; then
		runuser -u postgres -- "$@"
	elif command -v sudo >/dev/null 2>&1; then
		sudo -u postgres -- "$@"
	else
		die "cannot run as the postgres user: $*"
	fi
}

# answers: something accepts TCP connections on host:port.
answers() { (exec 3<>"/dev/tcp/$host/$port") 2>/dev/null; }

# can_login: postgres logs in over TCP without a password.
can_login() {
	command -v psql >/dev/null 2>&1 &&
		PGPASSWORD= PGPASSFILE=/nonexistent/.pgpass PGCONNECT_TIMEOUT=5 psql -w -X -q -h "$host" -p "$port" -U postgres -d postgres -Atc 'select 1' >/dev/null 2>&1
}

# bin_dir prints the newest Debian PostgreSQL server directory, if any.
bin_dir() {
	local d
	for d in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -t/ -k5 -n -r); do
		if [ -x "$d/pg_ctl" ] && [ -x "$d/initdb" ]; then
			echo "$d"
			return 0
		fi
	done
	return 1
}

# wait_answers polls until the server accepts connections, for up to 60 s.
wait_answers() {
	local deadline=$((SECONDS + 60))
	until answers && { ! command -v pg_isready >/dev/null 2>&1 || pg_isready -q -h "$host" -p "$port"; }; do
		((SECONDS < deadline)) || die "nothing answers on $host:$port 60 s after starting the server"
		sleep 0.2
	done
}

if answers && can_login; then
	say "PostgreSQL answers on $host:$port and lets postgres in without a password: nothing to do"
else
	if ! bin=$(bin_dir); then
		command -v apt-get >/dev/null 2>&1 || die "no PostgreSQL server installed and no apt-get to install the Debian package postgresql"
		say "installing the Debian package postgresql"
		as_root apt-get update -q
		as_root apt-get install -y -q postgresql
		bin=$(bin_dir) || die "postgresql installed but no pg_ctl and initdb under /usr/lib/postgresql/*/bin"
	fi
	say "server programs in $bin"

	if answers; then
		say "a server answers on $host:$port"
	else
		cluster=
		if command -v pg_lsclusters >/dev/null 2>&1; then
			cluster=$(pg_lsclusters -h 2>/dev/null | awk -v p="$port" '$3 == p { print $1 " " $2; exit }')
		fi
		if [ -n "$cluster" ]; then
			say "starting the Debian cluster $cluster on port $port"
			as_root install -d -m 2775 -o postgres -g postgres /var/run/postgresql
			# shellcheck disable=SC2086 # "version name"
			as_root pg_ctlcluster --skip-systemctl-redirect $cluster start
		else
			dir=${TMPDIR:-/tmp}/taxlink-postgres-$port
			if [ ! -f "$dir/data/PG_VERSION" ]; then
				say "no cluster on port $port: creating one with initdb in $dir/data"
				as_root rm -rf "$dir"
				as_root install -d -m 0700 -o postgres -g postgres "$dir"
				as_postgres "$bin/initdb" -D "$dir/data" -U postgres --auth=trust -E UTF8 >/dev/null
			fi
			say "starting the cluster in $dir/data on $host:$port (log $dir/log)"
			as_postgres "$bin/pg_ctl" -D "$dir/data" -l "$dir/log" -w -t 60 \
				-o "-p $port -k $dir -c listen_addresses=$host" start >/dev/null
		fi
		wait_answers
		say "PostgreSQL answers on $host:$port"
	fi

	if ! can_login; then
		hba=$(as_postgres psql -X -At -p "$port" -d postgres -c 'show hba_file' 2>/dev/null) ||
			die "postgres cannot log in from $host without a password, and its pg_hba.conf cannot be found through the local socket as the postgres user"
		say "letting postgres in from $host and ::1 without a password: trust lines first in $hba"
		tmp=$(mktemp)
		{
			echo "# added by taxlink .ci/start-postgres.sh: the tests connect as postgres without a password"
			echo "host all postgres 127.0.0.1/32 trust"
			echo "host all postgres ::1/128 trust"
			as_postgres cat "$hba"
		} >"$tmp"
		as_postgres sh -c 'cat >"$1"' sh "$hba" <"$tmp" # keeps the file's owner and mode
		rm -f "$tmp"
		as_postgres psql -X -q -At -p "$port" -d postgres -c 'select pg_reload_conf()' >/dev/null
		can_login || die "postgres still cannot log in from $host:$port without a password after reloading $hba"
	fi
fi

settings=$(PGPASSFILE=/nonexistent/.pgpass psql -w -X -h "$host" -p "$port" -U postgres -d postgres -At -F ' ' \
	-c "select split_part(current_setting('server_version'), ' ', 1), current_setting('fsync'), current_setting('synchronous_commit')")
read -r version fsync sync_commit <<<"$settings"
say "ready: PostgreSQL $version on $host:$port, user postgres without a password (fsync=$fsync, synchronous_commit=$sync_commit)"
