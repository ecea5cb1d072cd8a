#!/usr/bin/env bash
# Builds the stack's three images locally, with no registry and no base image:
#   ecomm-services:local  the `ecomm` release binary (entrypoint), for all four services
#   ecomm-redis:local     Debian's redis-server, run as uid 999
#   ecomm-postgres:local  Debian's PostgreSQL 15, run as uid 999, initdb on first start
# Each image is a minimal root filesystem assembled from host files (the binaries, exactly the
# shared libraries `ldd` lists, /etc/passwd, …), packed into a deterministic tar (sorted names,
# mtime 0, numeric owners) and `docker import`ed. The tar's sha256 is the image's content tag
# (`ecomm-services:c-<hash>`): when that tag exists the build is skipped and `:local` is re-pointed.
#
# Usage: scripts/docker-images.sh [--ecomm PATH]   (default: $CARGO_TARGET_DIR/release/ecomm,
#        built with `cargo build --release -p ecomm-services --bin ecomm` when missing)
# Prints one line per image: `<name>:local <content tag> built|cached`.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
deploy="$here/ecomm-services/deploy/docker"
target="${CARGO_TARGET_DIR:-$here/target}"
ecomm_bin=""
while (($#)); do
  case "$1" in
    --ecomm) ecomm_bin="$2"; shift 2 ;;
    *) echo "docker-images: unknown argument '$1' (expected --ecomm PATH)" >&2; exit 2 ;;
  esac
done
if [[ -z "$ecomm_bin" ]]; then
  ecomm_bin="$target/release/ecomm"
  (cd "$here" && cargo build --release -q -p ecomm-services --bin ecomm)
fi
[[ -x "$ecomm_bin" ]] || { echo "docker-images: '$ecomm_bin' is not an executable" >&2; exit 2; }

pg_bin=/usr/lib/postgresql/15/bin
pg_lib=/usr/lib/postgresql/15/lib
pg_share=/usr/share/postgresql/15
for f in /bin/busybox /usr/bin/redis-server /usr/bin/redis-cli "$pg_bin/postgres" "$pg_bin/initdb"; do
  [[ -x "$f" ]] || { echo "docker-images: '$f' is missing (just setup installs it)" >&2; exit 2; }
done

work=$(mktemp -d /tmp/ecomm-images.XXXXXX)
trap 'rm -rf "$work"' EXIT

# copy_file ROOT SRC [DEST]: copy SRC's content (symlinks followed) to ROOT/DEST (default SRC).
copy_file() {
  local root="$1" src="$2" dest="${3:-$2}"
  mkdir -p "$root$(dirname "$dest")"
  cp -L --preserve=mode "$src" "$root$dest"
}

# copy_elf ROOT FILE…: copy each ELF file and every shared library `ldd` resolves for it,
# at the path ldd prints (the ELF interpreter included).
copy_elf() {
  local root="$1"; shift
  local f lib
  for f in "$@"; do
    copy_file "$root" "$f"
    while read -r lib; do
      [[ -e "$root$lib" ]] || copy_file "$root" "$lib"
    done < <(ldd "$f" 2>/dev/null | awk '/=> \//{print $3} /^\t\/[^ ]+ \(/{print $1}')
  done
}

# base_tree ROOT USER UID HOME: the files every image needs — /etc/passwd and /etc/group
# (root plus one unprivileged user), nsswitch.conf, /tmp, and busybox as /bin/sh.
base_tree() {
  local root="$1" user="$2" uid="$3" home="$4"
  mkdir -p "$root"/{etc,tmp,bin,proc,sys,dev,run}
  chmod 1777 "$root/tmp"
  printf 'root:x:0:0:root:/root:/bin/sh\n%s:x:%s:%s:%s:%s:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n' \
    "$user" "$uid" "$uid" "$user" "$home" >"$root/etc/passwd"
  printf 'root:x:0:\n%s:x:%s:\nnogroup:x:65534:\n' "$user" "$uid" >"$root/etc/group"
  printf 'passwd: files\ngroup: files\nhosts: files dns\n' >"$root/etc/nsswitch.conf"
  cp /bin/busybox "$root/bin/busybox"
  ln -s busybox "$root/bin/sh"
  mkdir -p "$root$home"
  chown "$uid:$uid" "$root$home"
}

# pack NAME ROOT CHANGE…: deterministic tar of ROOT, imported as NAME:c-<hash> unless present;
# NAME:local then points at it.
pack() {
  local name="$1" root="$2"; shift 2
  local tarball="$work/$name.tar" hash tag state=cached
  tar --sort=name --mtime=@0 --numeric-owner --format=gnu -C "$root" -cf "$tarball" .
  # The content hash covers the image config too: a changed entrypoint is a new image.
  hash=$( { sha256sum <"$tarball"; printf '%s\n' "$@"; } | sha256sum | cut -c1-16)
  tag="$name:c-$hash"
  if ! docker image inspect "$tag" >/dev/null 2>&1; then
    local args=() c
    for c in "$@"; do args+=(--change "$c"); done
    docker import "${args[@]}" --message "ecomm content $hash" "$tarball" "$tag" >/dev/null
    state=built
  fi
  docker tag "$tag" "$name:local"
  # Older content tags of this image are garbage now (kept if a container still uses them).
  docker image ls --format '{{.Repository}}:{{.Tag}}' "$name" | grep -v -x -e "$tag" -e "$name:local" \
    | xargs -r docker rmi >/dev/null 2>&1 || true
  echo "$name:local $tag $state"
}

# --- ecomm-services: the one binary for gateway, registry, product and order ------------------
root="$work/ecomm"
base_tree "$root" ecomm 10001 /home/ecomm
copy_elf "$root" "$ecomm_bin"
mv "$root$ecomm_bin" "$root/ecomm.tmp"
rm -rf "${root:?}/$(echo "$ecomm_bin" | cut -d/ -f2)"
mkdir -p "$root/usr/local/bin"
rm "$root/ecomm.tmp"
# Debug info is a third of the binary and useless in an image.
strip --strip-debug -o "$root/usr/local/bin/ecomm" "$ecomm_bin"
chmod 0755 "$root/usr/local/bin/ecomm"
pack ecomm-services "$root" \
  'ENTRYPOINT ["/usr/local/bin/ecomm"]' 'CMD ["--help"]' 'USER 10001:10001' \
  'WORKDIR /home/ecomm' 'ENV PATH=/usr/local/bin:/bin' 'EXPOSE 3000 8001 8002 8500 8600/udp'

# --- ecomm-redis: redis-server (and redis-cli for health checks) ------------------------------
root="$work/redis"
base_tree "$root" redis 999 /data
copy_elf "$root" /usr/bin/redis-server /usr/bin/redis-cli
pack ecomm-redis "$root" \
  'ENTRYPOINT ["/usr/bin/redis-server"]' \
  'CMD ["--bind", "0.0.0.0", "--protected-mode", "no", "--save", "", "--appendonly", "no"]' \
  'USER 999:999' 'WORKDIR /data' 'ENV PATH=/usr/bin:/bin' 'EXPOSE 6379'

# --- ecomm-postgres: PostgreSQL 15, initdb on first start by a busybox-sh entrypoint -----------
root="$work/postgres"
base_tree "$root" postgres 999 /var/lib/postgresql
copy_elf "$root" "$pg_bin"/{postgres,initdb,pg_ctl,pg_isready,psql}
# llvmjit*.so drags in libLLVM (over 100 MB); jit is off without it.
for so in "$pg_lib"/*.so; do
  case "$so" in */llvmjit*) continue ;; esac
  copy_elf "$root" "$so"
done
mkdir -p "$root$pg_share"
cp -a "$pg_share/." "$root$pg_share/"
rm -rf "$root$pg_share/man"
mkdir -p "$root/usr/share"
cp -a /usr/share/zoneinfo "$root/usr/share/zoneinfo"
mkdir -p "$root/usr/local/bin"
install -m 0755 "$deploy/postgres-entrypoint.sh" "$root/usr/local/bin/postgres-entrypoint"
mkdir -p "$root/var/lib/postgresql/data" "$root/run/postgresql"
chown 999:999 "$root/var/lib/postgresql/data" "$root/run/postgresql"
chmod 0700 "$root/var/lib/postgresql/data"
pack ecomm-postgres "$root" \
  'ENTRYPOINT ["/usr/local/bin/postgres-entrypoint"]' 'USER 999:999' \
  'ENV PATH=/usr/lib/postgresql/15/bin:/usr/local/bin:/bin' 'ENV PGDATA=/var/lib/postgresql/data' \
  'VOLUME /var/lib/postgresql/data' 'EXPOSE 5432'
