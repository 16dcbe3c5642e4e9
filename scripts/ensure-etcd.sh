#!/usr/bin/env bash
# Installs Debian's etcd-server when no `etcd` binary is on the PATH; does nothing
# otherwise. The tests start their own etcd processes (free loopback ports, temporary
# data directories): the packaged service is never started, nor relied on.
set -euo pipefail

if command -v etcd >/dev/null 2>&1; then
    exit 0
fi
if [ "$(id -u)" != 0 ]; then
    echo "ensure-etcd: etcd is missing and only root can install it (apt-get install etcd-server)" >&2
    exit 1
fi

# Keep the package's service from starting (policy-rc.d is how Debian says so), unless a
# policy is already in place; it is removed again however the install ends.
policy=/usr/sbin/policy-rc.d
if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' > "$policy"
    chmod 755 "$policy"
    trap 'rm -f "$policy"' EXIT
fi

export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends etcd-server >/dev/null
command -v etcd >/dev/null 2>&1 || { echo "ensure-etcd: etcd-server installed no etcd" >&2; exit 1; }
echo "ensure-etcd: installed $(etcd --version | head -n 1)" >&2
