# Shared settings for the scripts in this folder. Sourced, not run.
ORION_CACHE=${ORION_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/orion-nvme}
KSRC=$ORION_CACHE/linux-7.3
BINDGEN=$ORION_CACHE/tools/bin/bindgen
CARGO_FUZZ=$ORION_CACHE/tools/bin/cargo-fuzz
export ORION_CACHE KSRC BINDGEN CARGO_FUZZ

log() { printf '[orion] %s\n' "$*" >&2; }
die() { printf '[orion] error: %s\n' "$*" >&2; exit 1; }

# Prints the URI of the machine's configured Debian archive (the one serving this release).
debian_mirror() {
    local codename
    codename=$(. /etc/os-release && echo "${VERSION_CODENAME:-bookworm}")
    python3 - "$codename" <<'PY'
import glob, sys
codename = sys.argv[1]
found = []
for path in sorted(glob.glob('/etc/apt/sources.list.d/*.sources')):
    for stanza in open(path).read().split('\n\n'):
        fields = {}
        for line in stanza.splitlines():
            if line.startswith('#') or ':' not in line:
                continue
            k, v = line.split(':', 1)
            fields[k.strip().lower()] = v.split()
        if codename in fields.get('suites', []) and 'deb' in fields.get('types', []):
            found += fields.get('uris', [])
for path in ['/etc/apt/sources.list'] + sorted(glob.glob('/etc/apt/sources.list.d/*.list')):
    try:
        lines = open(path).read().splitlines()
    except OSError:
        continue
    for line in lines:
        words = [w for w in line.split('#')[0].split() if not w.startswith('[')]
        if len(words) >= 3 and words[0] == 'deb' and words[2] == codename:
            found.append(words[1])
if not found:
    sys.exit(1)
print(found[0].rstrip('/'))
PY
}
