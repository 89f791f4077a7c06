#!/usr/bin/env bash
# Proves the README's two commands work verbatim on a fresh Debian with Debian's own Python (PEP 668).
#
#   sudo bash scripts/check_fresh_debian.sh [--suite bookworm|trixie|noble|jammy] [--no-tests] [--keep DIR]
#
# Ubuntu suites (noble, jammy) come from archive.ubuntu.com (main + universe) and need Ubuntu's archive
# key: Debian's package ubuntu-keyring, or UBUNTU_KEYRING=/path/to/ubuntu-archive-keyring.gpg.
#
# Builds a minimal Debian root from Debian's packages with mmdebstrap (apt-get install mmdebstrap),
# copies this checkout in (tracked and untracked-but-not-ignored files: no .venv, no caches), and runs
# inside it with chroot, as root (so install.sh needs no sudo):
#   1. the README's first command, read from README.md, verbatim; the piece runs headless (a chroot has
#      no display) until a SIGINT after RUN_S seconds (default 45) and must then exit 0; while it runs,
#      `.venv/bin/python run.py status` must exit 0 (healthy: the demo's outputs work without LEDs);
#   2. the README's second command (install the test tools, run the test suite), verbatim,
#      unless --no-tests.
# Needs root, network to the Debian mirror and PyPI, ~2 GiB of disk. Takes 5-10 min without the tests.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD

suite=bookworm
tests=1
keep=""
mirror=""
run_s="${RUN_S:-45}"
while (($#)); do
    case "$1" in
        --suite) suite="$2"; shift 2 ;;
        --no-tests) tests=0; shift ;;
        --keep) keep="$2"; shift 2 ;;
        *) echo "check_fresh_debian.sh: unknown option $1" >&2; exit 2 ;;
    esac
done
[[ $(id -u) -eq 0 ]] || { echo "check_fresh_debian.sh: needs root (chroot, mounts)" >&2; exit 2; }
command -v mmdebstrap >/dev/null || { echo "check_fresh_debian.sh: needs mmdebstrap (apt-get install mmdebstrap)" >&2; exit 2; }
extra=()
case "$suite" in
    focal|jammy|noble|oracular|plucky|questing|resolute)
        mirror="${UBUNTU_MIRROR:-http://archive.ubuntu.com/ubuntu}"
        keyring="${UBUNTU_KEYRING:-/usr/share/keyrings/ubuntu-archive-keyring.gpg}"
        [[ -r "$keyring" ]] || { echo "check_fresh_debian.sh: $suite needs Ubuntu's archive key: apt-get install ubuntu-keyring, or set UBUNTU_KEYRING" >&2; exit 2; }
        extra=(--components=main,universe --keyring="$keyring") ;;
    *) mirror="${DEBIAN_MIRROR:-http://deb.debian.org/debian}" ;;
esac

# The README's commands, exactly as printed (the indented lines that start with `bash scripts/install.sh`).
mapfile -t cmds < <(grep -E '^    bash scripts/install\.sh' README.md | sed 's/^    //')
[[ ${#cmds[@]} -eq 2 ]] || { echo "check_fresh_debian.sh: expected 2 install commands in README.md, found ${#cmds[@]}" >&2; exit 2; }
run_cmd="${cmds[0]}"
test_cmd="${cmds[1]}"
[[ "$test_cmd" == *--test* ]] || { echo "check_fresh_debian.sh: README's second command is not the test command" >&2; exit 2; }

root="${keep:-$(mktemp -d /tmp/tapestry-debian.XXXXXX)}"
mounted=()
cleanup() {
    for ((i=${#mounted[@]}-1; i>=0; i--)); do umount -l "${mounted[$i]}" 2>/dev/null || true; done
    [[ -z "$keep" ]] && rm -rf --one-file-system "$root"
}
trap cleanup EXIT

echo "== building a fresh Debian $suite in $root"
# minbase + what a technician's fresh install has anyway (sudo-less root, certificates for PyPI, and apt, which
# Ubuntu ranks "important" rather than "required", so its minbase leaves it out)
mmdebstrap --quiet --variant=minbase --include=apt,ca-certificates,procps "${extra[@]}" "$suite" "$root" "$mirror"
cp /etc/resolv.conf "$root/etc/resolv.conf"
# what Debian's installer writes and mmdebstrap leaves out: "localhost" must resolve
[[ -s "$root/etc/hosts" ]] || printf '127.0.0.1\tlocalhost\n::1\t\tlocalhost ip6-localhost ip6-loopback\n' > "$root/etc/hosts"
# This machine's own extra certificate authorities (a site's TLS-inspecting proxy), so that pip reaches PyPI
# from the fresh root as it does from here; a machine without any copies nothing.
if compgen -G "/usr/local/share/ca-certificates/*.crt" >/dev/null; then
    echo "== adding this machine's local CA certificates: $(ls /usr/local/share/ca-certificates)"
    cp /usr/local/share/ca-certificates/*.crt "$root/usr/local/share/ca-certificates/"
    chroot "$root" update-ca-certificates >/dev/null
fi
for m in proc sys dev dev/pts run; do
    mkdir -p "$root/$m"
    mount --bind "/$m" "$root/$m"
    mounted+=("$root/$m")
done

echo "== copying the checkout to /opt/tapestry"
mkdir -p "$root/opt/tapestry"
git ls-files -z --cached --others --exclude-standard | \
    (cd "$repo" && tar --null -T - -cf - 2>/dev/null) | tar -xf - -C "$root/opt/tapestry"

inside() { chroot "$root" /usr/bin/env -i HOME=/root PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    LANG=C.UTF-8 bash -c "cd /opt/tapestry || exit 2
$1"; }
# The same, in a network namespace of its own with only loopback: the piece binds its default ports
# (OSC 9000, health 9091, loopback receivers 6454/5568/4048), which a show or another check on this
# machine may hold; in here it meets neither, and `run.py status` asks this piece, not another one.
isolated() { unshare --net bash -c 'ip link set lo up && "$@"' isolated inside "$1"; }
export -f inside
export root

echo "== README command 1: $run_cmd   (SIGINT after ${run_s} s)"
# Its install half needs the mirror and PyPI, so `bash scripts/install.sh` runs first on the host's
# network, as in the README; then the whole command, verbatim, runs isolated (its install finds
# everything in place and downloads nothing).
inside "bash scripts/install.sh" > "$root/tmp/install.log" 2>&1 || { tail -n 20 "$root/tmp/install.log"; exit 1; }
isolated "( $run_cmd ) > /tmp/run.log 2>&1 & pid=\$!
        up=0
        for i in \$(seq 1 1200); do
            kill -0 \$pid 2>/dev/null || break
            if [[ -x .venv/bin/python ]] && .venv/bin/python run.py status >/dev/null 2>&1; then up=1; break; fi
            sleep 1
        done
        sleep $run_s
        .venv/bin/python run.py status > /tmp/status.txt 2>&1; st=\$?
        py=\$(pgrep -P \$pid || true)
        kill -INT \${py:-\$pid} 2>/dev/null || true
        wait \$pid; rc=\$?
        echo '-- run.py status (exit '\$st'):'; cat /tmp/status.txt
        echo '-- the run (first and last lines):'; grep -v '^ *$' /tmp/run.log | head -n 5; echo ...; tail -n 15 /tmp/run.log
        echo \"-- came up: \$up, run exit \$rc, status exit \$st\"
        [[ \$up -eq 1 && \$rc -eq 0 && \$st -eq 0 ]]"
echo "== README command 1: OK"

if ((tests)); then
    echo "== README command 2: $test_cmd"
    inside "$test_cmd"
    echo "== README command 2: OK"
fi
echo "== fresh Debian $suite: the README's commands work verbatim"
