#!/usr/bin/env bash
# Installs the Debian packages the tests and the demo need, only when missing,
# running `apt-get update` at most once. Safe to run again and again.
set -euo pipefail

# package:file-that-proves-it-is-installed
wanted=(
  "git:/usr/lib/git-core/git-http-backend"
  "openssh-client:/usr/bin/ssh-keygen"
  "openssh-server:/usr/sbin/sshd"
  "prometheus:/usr/bin/promtool"
  "chromium:/usr/bin/chromium"
  "docker-registry:/usr/bin/docker-registry"
)

missing=()
for entry in "${wanted[@]}"; do
  pkg=${entry%%:*}
  file=${entry#*:}
  [[ -e $file ]] || missing+=("$pkg")
done

if ((${#missing[@]} == 0)); then
  exit 0
fi

echo "deps: installing ${missing[*]}"
sudo=()
if [[ $(id -u) -ne 0 ]]; then
  if ! command -v sudo >/dev/null; then
    echo "deps: need root (or sudo) to install: ${missing[*]}" >&2
    exit 1
  fi
  sudo=(sudo)
fi
export DEBIAN_FRONTEND=noninteractive
# The packages' services must not start: tests run their own instances.
policy=/usr/sbin/policy-rc.d
if [[ ! -e $policy ]]; then
  printf '#!/bin/sh\nexit 101\n' | "${sudo[@]}" tee "$policy" >/dev/null
  "${sudo[@]}" chmod +x "$policy"
  trap '"${sudo[@]}" rm -f "$policy"' EXIT
fi
"${sudo[@]}" apt-get update -qq
"${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
echo "deps: installed ${missing[*]}"
