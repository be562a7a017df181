#!/usr/bin/env bash
# Build the syqure-wf image with podman, from Debian packages only (no
# registry): a bookworm base by mmdebstrap, then container/Containerfile on
# top with this checkout's wheel and Codon 0.18 + both Sequre flavours.
#
#   container/build.sh SEQURE_DIR [TAG]
#
# SEQURE_DIR: the Sequre bundle (install.sh, libsequre.so, the two stdlib
# tarballs). TAG defaults to localhost/syqure-wf:<version>. Needs podman and
# mmdebstrap (Debian: apt-get install podman mmdebstrap). Writes nothing into
# the checkout. CONTAINERS_CONF (runc, ulimits) comes from container/containers.conf
# unless set. SYQURE_BASE_REBUILD=1 remakes the base.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/.." && pwd)
sequre=$(cd "${1:?usage: container/build.sh SEQURE_DIR [TAG]}" && pwd)
version=$(python3 -c "import ast,sys; t=ast.parse(open(sys.argv[1]).read()); print(next(n.value.value for n in t.body if isinstance(n, ast.Assign) and n.targets[0].id == '__version__'))" "$repo/syqure_wf/__init__.py")
tag=${2:-localhost/syqure-wf:$version}
base=localhost/syqure-wf-base:bookworm
export CONTAINERS_CONF=${CONTAINERS_CONF:-$here/containers.conf}
say() { echo "container: $*" >&2; }

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

if [ "${SYQURE_BASE_REBUILD:-0}" = 1 ] || ! podman image exists "$base"; then
  say "base $base from Debian bookworm (mmdebstrap)"
  timeout 900 mmdebstrap --quiet --variant=minbase \
    --include=python3,python3-venv,ca-certificates,gcc,g++,zlib1g-dev,libgmp-dev,libssl3,openssl,procps,iproute2,util-linux \
    bookworm "$work/rootfs.tar"
  podman import --quiet "$work/rootfs.tar" "$base" >/dev/null
  rm -f "$work/rootfs.tar"
fi

say "wheel from the tracked files"
mkdir -p "$work/src" "$work/ctx/dist" "$work/ctx/sequre"
git -C "$repo" ls-files -z | (cd "$repo" && xargs -0 cp --parents -t "$work/src" 2>/dev/null || true)
timeout 600 python3 -m build --wheel --outdir "$work/ctx/dist" "$work/src" >"$work/build.log" 2>&1 \
  || { cat "$work/build.log" >&2; exit 1; }
cp "$sequre"/install.sh "$sequre"/libsequre.so "$sequre"/*-stdlib.tar.gz "$work/ctx/sequre/"
[ -f "$sequre/README.md" ] && cp "$sequre/README.md" "$work/ctx/sequre/"
cp "$here/Containerfile" "$work/ctx/"

# pip inside the build trusts this machine's CA (a site's TLS-inspecting proxy), at build time only
ca=/etc/ssl/certs/ca-certificates.crt
say "image $tag"
timeout 1200 podman build --quiet --pull=never --network=host \
  ${ca:+--volume "$ca:/run/host-ca.crt:ro" --build-arg PIP_CERT=/run/host-ca.crt} \
  --build-arg "BASE=$base" -t "$tag" "$work/ctx" >/dev/null
say "built $tag"
echo "$tag"
