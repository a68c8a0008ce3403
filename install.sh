#!/bin/sh
# Installs (or upgrades in place) the plumise binary for this machine.
#
#   curl -fsSL https://github.com/plumise/plumise/releases/latest/download/install.sh | sh
#
# Environment:
#   PLUMISE_RELEASE_URL  where plumise-<os>-<arch> and SHA256SUMS are
#                        (default: the project's latest GitHub release)
#   PLUMISE_INSTALL_DIR  where the binary goes (default: /usr/local/bin as root, else ~/.local/bin)
#
# The download is checked against SHA256SUMS before anything is replaced; a failed download, a
# checksum mismatch or an unsupported machine exits non-zero and leaves an installed binary as
# it was. See docs/operations.md.
set -eu

PLUMISE_REPO="plumise/plumise"
RELEASE_URL="${PLUMISE_RELEASE_URL:-https://github.com/${PLUMISE_REPO}/releases/latest/download}"
RELEASE_URL="${RELEASE_URL%/}"

say() { printf '%s\n' "$*"; }
die() {
  printf 'plumise install: %s\n' "$1" >&2
  [ -n "${2:-}" ] && printf 'hint: %s\n' "$2" >&2
  exit 1
}

# --- which asset -------------------------------------------------------------------------
os="$(uname -s)"
arch="$(uname -m)"
case "$os" in
  Linux) os=linux ;;
  Darwin) os=macos ;;
  MINGW* | MSYS* | CYGWIN* | Windows_NT)
    die "this script does not install on Windows" \
      "download plumise-windows-x64.exe and SHA256SUMS from ${RELEASE_URL%/latest/download}, check it, put it on your PATH" ;;
  *) die "unsupported operating system: $os" "plumise ships binaries for Linux and macOS (and Windows x64)" ;;
esac
case "$arch" in
  x86_64 | amd64) arch=x64 ;;
  aarch64 | arm64) arch=arm64 ;;
  *) die "unsupported architecture: $arch" "plumise ships binaries for x64 and arm64; on other machines run it from a checkout with Deno" ;;
esac
if [ "$os" = macos ] && [ "$arch" = x64 ]; then
  die "no binary for macOS x64 (Intel): onnxruntime's package has no library for it" \
    "run plumise from a checkout with Deno there (blocks cannot be served), or use an Apple silicon Mac"
fi
asset="plumise-${os}-${arch}"

# --- where to --------------------------------------------------------------------------
if [ -n "${PLUMISE_INSTALL_DIR:-}" ]; then
  dir="$PLUMISE_INSTALL_DIR"
elif [ "$(id -u)" = 0 ]; then
  dir=/usr/local/bin
else
  dir="${HOME:?HOME is not set}/.local/bin"
fi
mkdir -p "$dir" || die "cannot create $dir" "set PLUMISE_INSTALL_DIR to a directory you can write, or run as root"
[ -w "$dir" ] || die "cannot write to $dir" "set PLUMISE_INSTALL_DIR to a directory you can write, or run as root"
target="$dir/plumise"

# --- tools -----------------------------------------------------------------------------
if command -v curl >/dev/null 2>&1; then
  fetch() { curl -fsSL --retry 3 --connect-timeout 20 -o "$2" "$1"; }
elif command -v wget >/dev/null 2>&1; then
  fetch() { wget -q --tries=3 --timeout=20 -O "$2" "$1"; }
else
  die "neither curl nor wget is installed" "install one of them (apt-get install curl)"
fi
if command -v sha256sum >/dev/null 2>&1; then
  sha256() { sha256sum "$1" | cut -d' ' -f1; }
elif command -v shasum >/dev/null 2>&1; then
  sha256() { shasum -a 256 "$1" | cut -d' ' -f1; }
else
  die "neither sha256sum nor shasum is installed" "install coreutils (or perl's shasum)"
fi

# --- download and check ----------------------------------------------------------------
tmp="$(mktemp -d 2>/dev/null || mktemp -d -t plumise)"
staged=""
cleanup() {
  rm -rf "$tmp"
  [ -n "$staged" ] && rm -f "$staged"
  return 0
}
trap cleanup EXIT
trap 'exit 130' INT TERM

say "downloading $asset from $RELEASE_URL"
fetch "$RELEASE_URL/SHA256SUMS" "$tmp/SHA256SUMS" || die "download of $RELEASE_URL/SHA256SUMS failed" \
  "check the network and PLUMISE_RELEASE_URL"
fetch "$RELEASE_URL/$asset" "$tmp/$asset" || die "download of $RELEASE_URL/$asset failed" \
  "check the network and PLUMISE_RELEASE_URL; this release may not have $asset"
expected="$(awk -v f="$asset" '$2 == f || $2 == "*" f { print $1; exit }' "$tmp/SHA256SUMS")"
[ -n "$expected" ] || die "SHA256SUMS has no line for $asset" "the release is incomplete; try again later"
actual="$(sha256 "$tmp/$asset")"
if [ "$actual" != "$expected" ]; then
  die "checksum mismatch for $asset: got $actual, SHA256SUMS says $expected" \
    "the download is damaged or was altered; nothing was installed; try again"
fi
chmod 755 "$tmp/$asset"

# --- install (atomic rename in the target directory) -------------------------------------
before=""
if [ -x "$target" ]; then
  before="$("$target" version 2>/dev/null | head -n 1 || true)"
fi
staged="$dir/.plumise.tmp.$$"
cp "$tmp/$asset" "$staged" || die "cannot write $staged" "check the space and permissions of $dir"
chmod 755 "$staged"
mv -f "$staged" "$target" || die "cannot replace $target" "check the permissions of $dir"
staged=""
after="$("$target" version 2>/dev/null | head -n 1 || true)"

if [ -n "$before" ] && [ "$before" != "$after" ]; then
  say "upgraded $target: $before -> ${after:-?}"
elif [ -n "$before" ]; then
  say "reinstalled $target (${after:-?})"
else
  say "installed $target (${after:-?})"
fi
case ":${PATH:-}:" in
  *":$dir:"*) ;;
  *) say "note: $dir is not on your PATH; add it: export PATH=\"$dir:\$PATH\"" ;;
esac

say ""
say "next:"
case "$dir" in
  "${HOME:-/nonexistent}"/*) in_home=yes ;;
  *) in_home=no ;;
esac
if [ "$os" = linux ] && [ "$in_home" = no ]; then
  if [ "$(id -u)" = 0 ] && [ -z "${SUDO_USER:-}" ]; then sudo=""; else sudo="sudo "; fi
  say "  ${sudo}plumise wallet new --keystore /etc/plumise/keystore.json"
  say "  ${sudo}plumise service install --tier lite --keystore /etc/plumise/keystore.json"
else
  say "  plumise wallet new"
  say "  plumise serve --tier lite"
  if [ "$os" = linux ]; then
    say "(to run it as a systemd service, install as root: the service cannot run a binary from a home directory)"
  fi
fi
