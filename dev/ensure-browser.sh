#!/usr/bin/env bash
# Makes sure Debian's Chromium is installed for the web client's browser tests (tests/web), which drive
# it with Playwright: Playwright's own browser download cannot be used (no internet here). Safe to run
# any number of times; `make test` runs it. Installing needs root (CI and the dev machines are).
set -euo pipefail
if [ -x /usr/bin/chromium ]; then
  exit 0
fi
echo "installing Chromium (Debian's chromium and chromium-driver packages) for tests/web"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq chromium chromium-driver
