#!/usr/bin/env bash
# tests/compat/cli_json.sh INSTAR QEMU_IMG — `instar resize --output=json`:
# exactly one JSON object on stdout for success and every kind of failure,
# the schema of vmm/result_json.h, the errno mapping of docs/design.md §3.3, and the
# message equal to stderr without the "instar: " prefixes.
set -u
. "$(dirname "$0")/../kvm_gate.sh"
instar=$(realpath "$1")
qemu_img=$2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fails=0

# check RC CODE ERRNO SETUP ARGS...  (CODE/ERRNO "-" on success)
check() {
	local want_rc=$1 code=$2 errno=$3 setup=$4
	shift 4
	rm -f "$tmp/img"
	case $setup in
	raw:*) truncate -s "${setup#raw:}" "$tmp/img" ;;
	qcow2:*) "$qemu_img" create -q -f qcow2 "$tmp/img" "${setup#qcow2:}" ;;
	none) ;;
	esac
	local args=() a
	for a in "$@"; do
		[ "$a" = IMG ] && a=$tmp/img
		args+=("$a")
	done
	"$instar" resize --output=json "${args[@]}" >"$tmp/out" 2>"$tmp/err"
	local rc=$?
	guest_left_out "$tmp/err" && return
	if ! python3 - "$rc" "$want_rc" "$code" "$errno" "$tmp/out" "$tmp/err" <<'EOF'; then
import json, sys
rc, want_rc, code, errno, out, err = sys.argv[1:]
text = open(out).read()
assert text.endswith('\n') and text.count('\n') == 1, 'one line on stdout: %r' % text
doc = json.loads(text)
assert isinstance(doc, dict)
keys = ['filename', 'target_format', 'action', 'old_virtual_size',
        'resolved_new_virtual_size', 'file_size_before', 'file_size_after']
for k in keys:
    assert k in doc, k
for k in keys[3:]:
    assert doc[k] is None or (isinstance(doc[k], int) and doc[k] >= 0), k
assert doc['action'] in (None, 'noop', 'grow', 'shrink')
assert rc == want_rc, 'rc %s want %s' % (rc, want_rc)
if rc == '0':
    assert 'error' not in doc
    assert set(doc) == set(keys), sorted(doc)
else:
    e = doc['error']
    assert set(e) == {'code', 'errno', 'message'}, e
    assert e['code'] == code, (e['code'], code)
    assert e['errno'] == errno, (e['errno'], errno)
    lines = [l[len('instar: '):] if l.startswith('instar: ') else l
             for l in open(err).read().splitlines()
             if not l.startswith('WARNING') and not l.startswith('         ')
             and not l.startswith('instar: warning: Using')]
    assert e['message'] == '\n'.join(lines), (e['message'], lines)
EOF
		fails=$((fails + 1))
		echo "FAIL: resize --output=json $*"
		cat "$tmp/out" "$tmp/err"
	fi
}

check 0 - - raw:1M IMG +1M
check 0 - - raw:1M -f raw IMG 1M
check 0 - - qcow2:64M IMG +64M
check 1 INVALID_OPTION EINVAL raw:1M
check 1 INVALID_OPTION EINVAL raw:1M IMG
check 1 INVALID_OPTION EINVAL raw:1M --bogus IMG 2M
check 1 INVALID_OPTION EINVAL raw:1M --preallocation=x IMG 2M
check 1 INVALID_OPTION EINVAL raw:1M -f nosuch IMG 2M
check 1 INVALID_NEW_SIZE EINVAL raw:1M IMG 1Q
check 1 INVALID_NEW_SIZE ERANGE raw:1M IMG 16E
check 1 INVALID_NEW_SIZE EINVAL raw:1M IMG 0
check 1 SHRINK_WITHOUT_FLAG EPERM raw:2M IMG 1M
check 1 PREALLOC_NOT_GROWING EINVAL raw:1M --preallocation=full IMG 1M
check 1 TOO_LARGE ERANGE raw:1M IMG 9223372036739483648
check 1 TOO_LARGE ERANGE raw:1M -f raw IMG 1p
check 1 PREALLOCATION_UNSUPPORTED EOPNOTSUPP raw:1M --preallocation=metadata IMG 2M
check 1 NOT_MULTIPLE_512 EINVAL qcow2:1M IMG +1
check 1 OPEN_FAILED EIO none IMG 1M
check 1 INVALID_OPTION EINVAL raw:1M --object secret,id=s IMG 2M
check 1 INVALID_OPTION EINVAL raw:1M --image-opts driver=raw 2M
check 1 PARSE_FAILED EMEDIUMTYPE raw:1M -f vdi IMG 2M

# locked: a VM-style lock set held by another process
truncate -s 1M "$tmp/img"
python3 -c '
import fcntl, os, struct, sys, time
fd = os.open(sys.argv[1], os.O_RDWR)
for b in (100, 101, 103, 201, 203):
    fcntl.fcntl(fd, 37, struct.pack("hh4xqqi4x", fcntl.F_RDLCK, 0, b, 1, 0))
print("ready", flush=True)
time.sleep(60)' "$tmp/img" >"$tmp/holder" &
holder=$!
for _ in $(seq 100); do grep -q ready "$tmp/holder" && break; sleep 0.05; done
"$instar" resize --output=json -f raw "$tmp/img" 2M >"$tmp/out" 2>"$tmp/err"
rc=$?
kill "$holder"
wait "$holder" 2>/dev/null
python3 -c '
import json, sys
d = json.load(open(sys.argv[1]))
e = d["error"]
assert e["code"] == "LOCKED" and e["errno"] == "EBUSY", e
assert e["message"].startswith("Could not open") and "Is another process using" in e["message"], e
' "$tmp/out" && [ "$rc" = 1 ] || { fails=$((fails + 1)); echo "FAIL locked"; cat "$tmp/out" "$tmp/err"; }

echo "json tests: $fails failed"
[ "$fails" = 0 ] || exit 1
guest_skips_end
