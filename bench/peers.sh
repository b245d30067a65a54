#!/usr/bin/env bash
# `make bench-peers`: install the Debian peers the benchmarks compare against, if missing.
#
# Dovecot (IMAP/POP3) and Postfix (SMTP) come from Debian, installed non-interactively.
# Postfix is preseeded to "No configuration": the benchmarks run their own instances on
# 127.0.0.1 with self-contained configs, and the system must not start a mail service.
set -euo pipefail

packages=(dovecot-imapd dovecot-pop3d postfix)
missing=()
for pkg in "${packages[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed"; then
        missing+=("$pkg")
    fi
done

if [ "${#missing[@]}" -eq 0 ]; then
    echo "peers: ${packages[*]} already installed"
    exit 0
fi

sudo=""
if [ "$(id -u)" -ne 0 ]; then
    sudo="sudo"
fi

echo "peers: installing ${missing[*]}"
echo "postfix postfix/main_mailer_type select No configuration" | $sudo debconf-set-selections
echo "postfix postfix/mailname string localhost" | $sudo debconf-set-selections
$sudo env DEBIAN_FRONTEND=noninteractive apt-get update -qq
$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    "${missing[@]}"
