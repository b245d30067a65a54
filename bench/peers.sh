#!/usr/bin/env bash
# `make bench-peers`: install the Debian peers the benchmarks compare against, if missing.
#
# Dovecot (IMAP/POP3) and Postfix (SMTP) come from Debian, installed non-interactively.
# Postfix is preseeded to "No configuration": the benchmarks run their own instances on
# 127.0.0.1 with self-contained configs, and the system must not start a mail service.
#
# imap-idle runs Dovecot with 1,000 IDLE connections: a process each, holding an inotify
# instance and a second one while it waits for a lock, all as one user. Linux allows 128
# per user, so the limit is raised (until reboot) if lower.
set -euo pipefail

packages=(dovecot-imapd dovecot-pop3d postfix)
inotify_instances=32768

sudo=""
if [ "$(id -u)" -ne 0 ]; then
    sudo="sudo"
fi

# PEERS_PACKAGES_ONLY=1 (CI, which runs no benchmark) installs the packages and leaves the
# kernel setting alone.
current=$(cat /proc/sys/fs/inotify/max_user_instances 2>/dev/null || echo "$inotify_instances")
if [ "${PEERS_PACKAGES_ONLY:-0}" != "1" ] && [ "$current" -lt "$inotify_instances" ]; then
    echo "peers: raising fs.inotify.max_user_instances from $current to $inotify_instances"
    $sudo sysctl -q -w fs.inotify.max_user_instances="$inotify_instances" \
        || echo "peers: could not raise it; imap-idle's Dovecot will poll every 30 s"
fi

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

echo "peers: installing ${missing[*]}"
echo "postfix postfix/main_mailer_type select No configuration" | $sudo debconf-set-selections
echo "postfix postfix/mailname string localhost" | $sudo debconf-set-selections
$sudo env DEBIAN_FRONTEND=noninteractive apt-get update -qq
$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    "${missing[@]}"
