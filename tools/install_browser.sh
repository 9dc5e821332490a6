#!/usr/bin/env bash
# Installs the browser that tests/test_browser.py drives: Debian's (or Ubuntu's) Chromium from the system's package
# manager. Playwright, the Python package that drives it, comes with the test environment (pip); its own browser
# download is not used (the test passes Chromium's path as executable_path).
#
#   bash tools/install_browser.sh        # as root, or as a user with password-less sudo
#
# Exits 0 when a Chromium is there (already, or installed now), 1 with the reason when none can be installed;
# .ci/run then sets DLVIZ_SKIP_BROWSER=1 and the test says it was skipped.
set -euo pipefail

found() {
    for name in "${DLVIZ_CHROMIUM:-}" chromium chromium-browser; do
        if [ -n "$name" ] && command -v "$name" >/dev/null 2>&1; then
            echo "browser test: using $(command -v "$name") ($("$name" --version 2>/dev/null | head -n 1))"
            return 0
        fi
    done
    return 1
}

found && exit 0

if ! command -v apt-get >/dev/null 2>&1; then
    echo "browser test: no Chromium and no apt-get here; install Chromium with your package manager" \
         "(or set DLVIZ_CHROMIUM to its path)" >&2
    exit 1
fi
if [ "$(id -u)" -eq 0 ]; then
    as_root=()
elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    as_root=(sudo -n)
else
    echo "browser test: Chromium is missing and installing it needs root: sudo apt-get install chromium" >&2
    exit 1
fi

echo "browser test: installing Chromium (apt-get install chromium: 80 MB for Chromium itself, plus its libraries)"
export DEBIAN_FRONTEND=noninteractive
start=$(date +%s)
if ! { "${as_root[@]}" apt-get update -qq && "${as_root[@]}" apt-get install -y -qq chromium >/dev/null; }; then
    echo "browser test: apt-get could not install chromium" >&2
    exit 1
fi
echo "browser test: Chromium installed in $(( $(date +%s) - start )) s"
found
