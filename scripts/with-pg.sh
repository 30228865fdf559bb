#!/usr/bin/env bash
# Run a command with PG_DATABASE_URL pointing at PostgreSQL 15 + pgvector.
#
#   scripts/with-pg.sh COMMAND [ARGS...]
#
# If PG_DATABASE_URL (or DATABASE_URL with a postgres scheme) is already set, the command simply runs
# against it. Otherwise this script provisions what is missing on this Debian machine (the PostgreSQL 15
# server, postgresql-server-dev-15, pgvector built from Debian's source package), starts a throwaway
# cluster as the unprivileged `postgres` user on a private port and a private unix-socket directory,
# runs the command, and stops the cluster on exit, also when the command fails or is interrupted.
#
# Failing to provision PostgreSQL is always an error (exit 1): the PostgreSQL tests never skip silently.
set -euo pipefail

log() { printf '[with-pg] %s\n' "$*" >&2; }
die() { printf '[with-pg] error: %s\n' "$*" >&2; exit 1; }

[ $# -gt 0 ] || die "usage: scripts/with-pg.sh COMMAND [ARGS...]"

if [ -z "${PG_DATABASE_URL:-}" ] && [[ "${DATABASE_URL:-}" == postgres* ]]; then
    export PG_DATABASE_URL="$DATABASE_URL"
fi
if [ -n "${PG_DATABASE_URL:-}" ]; then
    log "using the given PG_DATABASE_URL"
    exec "$@"
fi

PG_VERSION=15
PG_BIN="/usr/lib/postgresql/$PG_VERSION/bin"
PGVECTOR_VERSION=0.8.0
APT_UPDATED=0

as_root() {
    if [ "$(id -u)" -eq 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo -n "$@"; else
        die "need root to run: $* (install it by hand, or set PG_DATABASE_URL)"; fi
}
apt_update_once() {
    if [ "$APT_UPDATED" -eq 0 ]; then
        log "apt-get update"
        as_root apt-get update -qq >/dev/null || die "apt-get update failed"
        APT_UPDATED=1
    fi
}
apt_install() {
    apt_update_once
    log "installing $*"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null \
        || die "apt-get install $* failed"
}

# Prints `URIs: ...` and, when the entry has one, its `Signed-By:` field (continuation lines included) for
# the first Debian archive entry of this machine's apt configuration: deb822 stanzas in
# /etc/apt/sources.list.d/*.sources, then one-line entries in /etc/apt/sources.list and
# /etc/apt/sources.list.d/*.list. An archive entry has type deb, a suite without a dash (not -updates or
# -security) and the component main. Fails when there is none.
debian_archive() {
    local f out
    for f in /etc/apt/sources.list.d/*.sources; do
        [ -r "$f" ] || continue
        out=$(awk '
            function flush() {
                if (types ~ /(^| )deb( |$)/ && suites ~ /(^| )[a-z]+( |$)/ && components ~ /(^| )main( |$)/ \
                    && uris != "" && enabled !~ /^no$/) {
                    split(uris, u, " "); print "URIs: " u[1]; if (signed != "") print signed; found = 1; exit
                }
                types = suites = components = uris = signed = enabled = ""; field = ""
            }
            /^#/ { next }
            /^[ \t]*$/ { flush(); next }
            /^[ \t]/ { if (field == "signed-by") signed = signed "\n" $0; next }
            {
                name = tolower(substr($0, 1, index($0, ":") - 1)); value = substr($0, index($0, ":") + 1)
                sub(/^[ \t]+/, "", value); sub(/[ \t]+$/, "", value); field = name
                if (name == "types") types = value; else if (name == "suites") suites = value
                else if (name == "components") components = value; else if (name == "uris") uris = value
                else if (name == "enabled") enabled = tolower(value)
                else if (name == "signed-by") signed = "Signed-By: " value
            }
            END { if (!found) flush(); if (!found) exit 1 }
        ' "$f") && { printf '%s\n' "$out"; return 0; }
    done
    for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
        [ -r "$f" ] || continue
        out=$(awk '
            /^[ \t]*deb[ \t]/ {
                i = 2; opts = ""
                if ($2 ~ /^\[/) { while (i <= NF) { opts = opts " " $i; if ($i ~ /\]$/) { i++; break } i++ } }
                uri = $i; suite = $(i + 1); main = 0
                for (j = i + 2; j <= NF; j++) if ($j == "main") main = 1
                if (suite ~ /^[a-z]+$/ && main) {
                    print "URIs: " uri
                    if (match(opts, /signed-by=[^] ]+/)) print "Signed-By: " substr(opts, RSTART + 10, RLENGTH - 10)
                    found = 1; exit
                }
            }
            END { if (!found) exit 1 }
        ' "$f") && { printf '%s\n' "$out"; return 0; }
    done
    return 1
}

# 1. The server.
if [ ! -x "$PG_BIN/postgres" ]; then
    apt_install "postgresql-$PG_VERSION"
fi
[ -x "$PG_BIN/postgres" ] || die "PostgreSQL $PG_VERSION server not found in $PG_BIN"

# libpq's headers, for the crate's `pg` feature (Diesel links libpq).
if [ ! -f /usr/include/postgresql/libpq-fe.h ]; then
    apt_install libpq-dev
fi

# 2. pgvector, built from Debian's source package (no binary package exists for bookworm).
PG_SHAREDIR="/usr/share/postgresql/$PG_VERSION"
if [ ! -f "$PG_SHAREDIR/extension/vector.control" ]; then
    if [ ! -x "$PG_BIN/pg_config" ] || [ ! -d "/usr/include/postgresql/$PG_VERSION/server" ]; then
        apt_install "postgresql-server-dev-$PG_VERSION" make gcc
    fi
    work=$(mktemp -d)
    mkdir -p "$work/lists/partial"
    # The Debian archive this machine's apt already uses (its own configuration only: no host is named
    # here): URIs and Signed-By, copied into a deb-src entry for trixie.
    archive=$(debian_archive) || die "no Debian archive (a deb entry for a suite with component main) in this \
machine's apt configuration (/etc/apt/sources.list.d/*.sources, /etc/apt/sources.list, /etc/apt/sources.list.d/*.list): \
add one, or install pgvector by hand and set PG_DATABASE_URL"
    {
        printf 'Types: deb-src\nSuites: trixie\nComponents: main\n'
        printf '%s\n' "$archive"
    } >"$work/trixie-src.sources"
    apt_opts=(-o "Dir::Etc::SourceList=$work/trixie-src.sources" -o Dir::Etc::SourceParts=/dev/null
              -o "Dir::State::Lists=$work/lists" -o APT::Sandbox::User=root)
    log "fetching pgvector's Debian source package"
    apt-get "${apt_opts[@]}" update -qq >/dev/null || die "could not read Debian trixie's source index"
    (cd "$work" && apt-get "${apt_opts[@]}" source --download-only pgvector >/dev/null) \
        || die "could not download the pgvector source package"
    tarball=$(ls "$work"/pgvector_*.orig.tar.gz 2>/dev/null | head -n 1)
    [ -n "$tarball" ] || die "pgvector source tarball missing after download"
    tar -xzf "$tarball" -C "$work"
    src=$(find "$work" -maxdepth 1 -type d -name 'pgvector-*' | head -n 1)
    log "building $(basename "$src")"
    make -s -C "$src" PG_CONFIG="$PG_BIN/pg_config" >/dev/null 2>"$work/build.log" \
        || { cat "$work/build.log" >&2; die "building pgvector failed"; }
    as_root make -s -C "$src" PG_CONFIG="$PG_BIN/pg_config" install >/dev/null || die "installing pgvector failed"
    rm -rf "$work"
fi
[ -f "$PG_SHAREDIR/extension/vector.control" ] || die "pgvector is not installed in $PG_SHAREDIR/extension"

# 3. A throwaway cluster, owned by an unprivileged user, on a private port and socket directory.
PG_USER=postgres
id "$PG_USER" >/dev/null 2>&1 || die "user '$PG_USER' missing (the postgresql-$PG_VERSION package creates it)"
run_as_pg() {
    if [ "$(id -un)" = "$PG_USER" ]; then "$@"; else as_root runuser -u "$PG_USER" -- "$@"; fi
}
CLUSTER=$(mktemp -d /tmp/diesel-vector-pg.XXXXXX)
chmod 755 "$CLUSTER"
mkdir -p "$CLUSTER/data" "$CLUSTER/socket"
chown -R "$PG_USER" "$CLUSTER" 2>/dev/null || as_root chown -R "$PG_USER" "$CLUSTER"

stop_cluster() {
    local status=$?
    if [ -f "$CLUSTER/data/postmaster.pid" ]; then
        run_as_pg "$PG_BIN/pg_ctl" -D "$CLUSTER/data" -m immediate -w stop >/dev/null 2>&1 || true
    fi
    rm -rf "$CLUSTER" 2>/dev/null || as_root rm -rf "$CLUSTER" || true
    exit "$status"
}
trap stop_cluster EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

run_as_pg "$PG_BIN/initdb" -D "$CLUSTER/data" --auth=trust --username="$PG_USER" -E UTF8 --no-sync >/dev/null \
    || die "initdb failed"

PORT=${PGV_PORT:-}
if [ -z "$PORT" ]; then
    PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])' 2>/dev/null \
        || echo $((20000 + RANDOM % 20000)))
fi
run_as_pg "$PG_BIN/pg_ctl" -D "$CLUSTER/data" -l "$CLUSTER/server.log" -w -t 60 \
    -o "-p $PORT -k $CLUSTER/socket -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200" \
    start >/dev/null || { cat "$CLUSTER/server.log" >&2; die "could not start PostgreSQL"; }

export PG_DATABASE_URL="postgres://$PG_USER@127.0.0.1:$PORT/postgres"
log "PostgreSQL $PG_VERSION + pgvector running: PG_DATABASE_URL=$PG_DATABASE_URL"
"$@"
