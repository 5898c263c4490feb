#!/bin/sh
# install-softhsm.sh: make sure SoftHSM2 (Debian package softhsm2) is
# installed, for the PKCS#11 tests of internal/keystore, which fail instead
# of skipping when TAXLINK_TEST_STRICT=1. Idempotent: does nothing when
# softhsm2-util and the module are already there. Needs root or sudo and
# apt-get (Debian/Ubuntu).
set -eu

module=/usr/lib/softhsm/libsofthsm2.so

if command -v softhsm2-util >/dev/null 2>&1 && [ -e "$module" ]; then
	echo "install-softhsm: softhsm2 already installed ($module)"
	exit 0
fi

if [ "$(id -u)" -eq 0 ]; then
	sudo=
elif command -v sudo >/dev/null 2>&1; then
	sudo=sudo
else
	echo "install-softhsm: not root and no sudo; install the Debian package softhsm2" >&2
	exit 1
fi
if ! command -v apt-get >/dev/null 2>&1; then
	echo "install-softhsm: no apt-get; install SoftHSM2 so that $module exists" >&2
	exit 1
fi

export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -q
$sudo apt-get install -y -q softhsm2

if ! command -v softhsm2-util >/dev/null 2>&1 || [ ! -e "$module" ]; then
	echo "install-softhsm: softhsm2 installed but softhsm2-util or $module is missing" >&2
	exit 1
fi
echo "install-softhsm: installed $(softhsm2-util --version) ($module)"
