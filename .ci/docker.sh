#!/usr/bin/env bash
# A Docker engine and a local PostgreSQL image for the docker tests. Idempotent:
#   1. install Debian's docker.io when dockerd is missing;
#   2. start dockerd when `docker info` does not answer, and wait for it;
#   3. build $IMAGE from Debian packages (debootstrap + docker import) unless an image built
#      from the same recipe already exists (the recipe's hash is a label on the image).
# No registry is reachable, so nothing is pulled: the root file system comes from the
# Debian mirror apt is already configured with, read from apt's sources at run time.
set -euo pipefail
SELF="$(cd "$(dirname "$0")" && pwd)/$(basename "$0")"
cd "$(dirname "$SELF")/.."

IMAGE="${SQLFENCE_TEST_PG_IMAGE:-sqlfence/postgres:15-local}"
RECIPE=.ci/pg-image
LOG_DIR="${SQLFENCE_DOCKER_LOG_DIR:-/var/log}"

say() { printf '[docker.sh %s] %s\n' "$(date +%H:%M:%S)" "$*"; }

# -- 1. the engine ---------------------------------------------------------------------
need=()
command -v dockerd >/dev/null || need+=(docker.io)
command -v docker >/dev/null || need+=(docker.io)
command -v debootstrap >/dev/null || need+=(debootstrap)
if [ ${#need[@]} -gt 0 ]; then
  say "installing ${need[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi

if docker info >/dev/null 2>&1; then
  say "dockerd is running"
else
  say "starting dockerd (log: $LOG_DIR/dockerd.log)"
  mkdir -p "$LOG_DIR"
  nohup dockerd >"$LOG_DIR/dockerd.log" 2>&1 &
  for _ in $(seq 1 60); do
    docker info >/dev/null 2>&1 && break
    sleep 1
  done
  if ! docker info >/dev/null 2>&1; then
    say "dockerd did not answer within 60 s; last lines of its log:"
    tail -n 30 "$LOG_DIR/dockerd.log" >&2
    exit 1
  fi
  say "dockerd is up"
fi

# -- 2. the image ----------------------------------------------------------------------
recipe_hash="$(cat "$SELF" "$RECIPE"/* | sha256sum | cut -c1-16)"
existing="$(docker image inspect --format '{{index .Config.Labels "sqlfence.recipe"}}' \
  "$IMAGE" 2>/dev/null || true)"
if [ "$existing" = "$recipe_hash" ]; then
  say "image $IMAGE is up to date (recipe $recipe_hash): not rebuilding"
  exit 0
fi

# The mirror and suite apt already uses (deb822 .sources first, then one-line lists).
codename="$(. /etc/os-release && echo "${VERSION_CODENAME:?}")"
mirror="$(
  {
    cat /etc/apt/sources.list.d/*.sources 2>/dev/null | awk '
      /^[[:space:]]*$/ { if (uri != "" && suites ~ /(^| )'"$codename"'( |$)/) print uri; uri=""; suites="" }
      /^URIs:/ { uri=$2 }
      /^Suites:/ { $1=""; suites=$0 }
      END { if (uri != "" && suites ~ /(^| )'"$codename"'( |$)/) print uri }'
    cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null |
      sed 's/\[[^]]*\]//' | awk '$1 == "deb" && $3 == "'"$codename"'" { print $2 }'
  } | grep -v -- '-security' | head -n 1 || true
)"
if [ -z "$mirror" ]; then
  say "no Debian mirror for $codename found in apt's sources" >&2
  exit 1
fi

started=$SECONDS
work="$(mktemp -d /var/tmp/sqlfence-pg-image.XXXXXX)"
trap 'rm -rf "$work"' EXIT
say "building $IMAGE from Debian $codename packages (debootstrap, about a minute)"
debootstrap --variant=minbase --include=postgresql-15 "$codename" "$work/rootfs" "$mirror" \
  >"$work/debootstrap.log" 2>&1 || {
  tail -n 30 "$work/debootstrap.log" >&2
  exit 1
}
bindir="$(ls -d "$work"/rootfs/usr/lib/postgresql/*/bin | head -n 1)"
bindir="${bindir#"$work/rootfs"}"
say "root file system ready after $((SECONDS - started)) s; PostgreSQL in $bindir"

# Slim it: the Debian cluster made by the package, package caches, documentation.
rm -rf "$work"/rootfs/var/lib/postgresql/*/main "$work"/rootfs/etc/postgresql/* \
  "$work"/rootfs/var/cache/apt/archives/*.deb "$work"/rootfs/var/lib/apt/lists/* \
  "$work"/rootfs/usr/share/doc/* "$work"/rootfs/usr/share/man/* "$work"/rootfs/usr/share/info/*
install -m 0755 "$RECIPE/docker-entrypoint.sh" "$work/rootfs/usr/local/bin/docker-entrypoint.sh"

tar -C "$work/rootfs" -c . | docker import \
  -c "ENV PATH=$bindir:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin" \
  -c "ENV PGDATA=/var/lib/postgresql/data" \
  -c "ENV LANG=C.UTF-8" \
  -c "LABEL sqlfence.recipe=$recipe_hash" \
  -c "EXPOSE 5432" \
  -c 'ENTRYPOINT ["/usr/local/bin/docker-entrypoint.sh"]' \
  -c 'CMD ["postgres"]' \
  - "$IMAGE" >/dev/null
say "built $IMAGE in $((SECONDS - started)) s"

# A smoke test: the image must start and answer a query.
name="sqlfence-smoke-$$"
docker run -d --rm --name "$name" -e POSTGRES_PASSWORD=smoke "$IMAGE" >/dev/null
trap 'docker rm -f "$name" >/dev/null 2>&1 || true; rm -rf "$work"' EXIT
for _ in $(seq 1 30); do
  if docker exec -e PGPASSWORD=smoke "$name" psql -U postgres -h 127.0.0.1 -tAc 'SELECT 1' 2>/dev/null |
    grep -q 1; then
    say "smoke test passed: $IMAGE answers queries"
    exit 0
  fi
  sleep 0.5
done
say "smoke test failed: $IMAGE did not answer; its log:" >&2
docker logs "$name" 2>&1 | tail -n 30 >&2
exit 1
