#!/usr/bin/env bash
# Installs what the Docker connector's tests need, only when it is missing: a Docker
# engine (Debian's docker.io: dockerd, containerd, runc) and busybox-static, whose one
# static binary is the root filesystem of the test image (there is no registry to pull
# from). Idempotent: a second run changes nothing and asks no package server.
# The tests start their own private engine; nothing here starts a daemon.
set -euo pipefail

missing=()
# dockerd is in /usr/sbin, which a non-root PATH may lack.
command -v dockerd >/dev/null 2>&1 || [ -x /usr/sbin/dockerd ] || missing+=(docker.io)
dpkg-query -W -f='${Status}' busybox-static 2>/dev/null | grep -q "ok installed" \
    || missing+=(busybox-static)
if [ ${#missing[@]} -eq 0 ]; then
    exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
    echo "ensure-docker: ${missing[*]} missing, and only root can install them" \
         "(apt-get install ${missing[*]}): the Docker tests will be skipped" >&2
    # Under CI they must run: the test session fails on its own then, with the reason.
    exit 0
fi
echo "ensure-docker: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# --no-install-recommends: no cgroupfs-mount, git or the like, only the engine itself.
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
[ -x /usr/sbin/dockerd ] && [ -x /bin/busybox ]
