#!/usr/bin/env bash
# Installs Debian's chromium and chromium-driver when /usr/bin/chromium or
# /usr/bin/chromedriver is missing; does nothing otherwise. The browser tests
# (tests/ui/) drive that chromium through that chromedriver: no browser build is
# ever downloaded (Selenium is given the driver's path, so its manager stays idle).
set -euo pipefail

if [ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ]; then
    exit 0
fi
if [ "$(id -u)" != 0 ]; then
    echo "ensure-chromium: chromium or chromedriver is missing and only root can install" \
         "them (apt-get install chromium chromium-driver)" >&2
    exit 1
fi

export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends chromium chromium-driver >/dev/null
for binary in /usr/bin/chromium /usr/bin/chromedriver; do
    [ -x "$binary" ] || { echo "ensure-chromium: the packages installed no $binary" >&2; exit 1; }
done
echo "ensure-chromium: installed $(/usr/bin/chromium --version 2>/dev/null | head -n 1)" >&2
