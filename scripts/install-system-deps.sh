#!/usr/bin/env bash
# Install the Debian packages that the test suite uses (real services, real Kafka tooling) when
# they are missing. As root it installs them quietly; otherwise it prints one line saying what to
# install and carries on.
#
# Usage: scripts/install-system-deps.sh [PACKAGE ...]
#   (default: mosquitto postgresql kcat graphviz, Maven with a Java 17 JDK for the Java client and
#   the Kafka broker the tests fetch from Maven Central, and openssl for the certificate of the
#   Kafka the TLS tests start)
set -euo pipefail

packages=("$@")
if [ ${#packages[@]} -eq 0 ]; then
    packages=(mosquitto postgresql kcat graphviz maven openjdk-17-jdk-headless openssl)
fi

installed() {
    [ "$(dpkg-query -W -f='${Status}' "$1" 2>/dev/null)" = "install ok installed" ]
}

missing=()
for pkg in "${packages[@]}"; do
    installed "$pkg" || missing+=("$pkg")
done
[ ${#missing[@]} -eq 0 ] && exit 0

if ! command -v apt-get >/dev/null 2>&1; then
    echo "system packages missing (no apt-get here; install them by hand): ${missing[*]}" >&2
    exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
    echo "system packages missing; as root run: apt-get install ${missing[*]}" >&2
    exit 0
fi

echo "installing system packages: ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
log=$(mktemp)
cleanup=(rm -f "$log")
trap '"${cleanup[@]}"' EXIT

# Installing a server package must not start its daemon here: the tests start their own
# instances on free ports. policy-rc.d exit 101 tells invoke-rc.d not to start services.
if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
    chmod +x /usr/sbin/policy-rc.d
    cleanup+=(/usr/sbin/policy-rc.d)
fi

apt_install() {
    apt-get install -y -qq --no-install-recommends -o Dpkg::Use-Pty=0 "${missing[@]}" >"$log" 2>&1
}

# Update the package lists only when installing from the current ones fails (no lists yet, a
# package unknown to them, or files they name that are gone from the mirror).
if ! apt_install; then
    apt-get update -qq >"$log" 2>&1 || { cat "$log" >&2; exit 1; }
    apt_install || { cat "$log" >&2; exit 1; }
fi
echo "installed: ${missing[*]}" >&2
