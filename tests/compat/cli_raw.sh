#!/usr/bin/env bash
# tests/compat/cli_raw.sh INSTAR QEMU_IMG — `instar resize` against
# `qemu-img resize` 7.2 on copies of the same image: exit code, stdout,
# stderr (qemu-img: -> instar:), resulting file size and content
# (`qemu-img compare`). Raw images for everything; qcow2 for what happens
# before the guest plus a few grows/shrinks; the size grammar of docs/qemu.md §1.3
# string by string.
set -u
. "$(dirname "$0")/../kvm_gate.sh"
instar=$(realpath "$1")
qemu_img=$2
qemu_dir=$(dirname "$qemu_img")
export PATH="$qemu_dir:$PATH"

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fails=0
cases=0

# make_image SPEC DIR: creates DIR/img as SPEC says.
make_image() {
	local spec=$1 dir=$2
	rm -rf "$dir"
	mkdir -p "$dir"
	case $spec in
	none) ;;
	dir) mkdir "$dir/img" ;;
	raw:*) truncate -s "${spec#raw:}" "$dir/img"
	       # recognisable content at the start, so compare means something
	       printf 'instar-compat' | dd of="$dir/img" conv=notrunc status=none 2>/dev/null ;;
	raw0) : >"$dir/img" ;;
	qcow2:*) "$qemu_img" create -q -f qcow2 "$dir/img" "${spec#qcow2:}" ;;
	vmdk:*) "$qemu_img" create -q -f vmdk "$dir/img" "${spec#vmdk:}" ;;
	*) echo "bad spec $spec"; exit 2 ;;
	esac
}

norm() {
	sed -e 's/^qemu-img: /instar: /' \
	    -e "s/^Try 'qemu-img --help' for more information/Try 'instar --help' for more information/"
}

# check SPEC ARGS... : IMG in ARGS stands for the image.
check() {
	local spec=$1
	shift
	local args=() a
	for a in "$@"; do
		[ "$a" = IMG ] && a=img
		args+=("$a")
	done
	cases=$((cases + 1))
	make_image "$spec" "$tmp/q"
	make_image "$spec" "$tmp/i"
	(cd "$tmp/q" && "$qemu_img" resize "${args[@]}" >../q.out 2>../q.err)
	local qrc=$?
	(cd "$tmp/i" && "$instar" resize "${args[@]}" >../i.out 2>../i.err)
	local irc=$?
	guest_left_out "$tmp/i.err" && return
	norm <"$tmp/q.err" >"$tmp/q.errn"
	local bad=""
	[ "$qrc" = "$irc" ] || bad="$bad rc($qrc vs $irc)"
	cmp -s "$tmp/q.out" "$tmp/i.out" || bad="$bad stdout"
	cmp -s "$tmp/q.errn" "$tmp/i.err" || bad="$bad stderr"
	if [ -f "$tmp/q/img" ] && [ -f "$tmp/i/img" ]; then
		local qs is
		qs=$(stat -c %s "$tmp/q/img")
		is=$(stat -c %s "$tmp/i/img")
		case $spec in
		raw*)
			[ "$qs" = "$is" ] || bad="$bad size($qs vs $is)"
			cmp -s "$tmp/q/img" "$tmp/i/img" || bad="$bad content" ;;
		*)
			local qv iv
			qv=$("$qemu_img" info -U --output=json "$tmp/q/img" | grep '"virtual-size"')
			iv=$("$qemu_img" info -U --output=json "$tmp/i/img" | grep '"virtual-size"')
			[ "$qv" = "$iv" ] || bad="$bad virtual-size($qv vs $iv)"
			"$qemu_img" compare -U -q "$tmp/q/img" "$tmp/i/img" || bad="$bad compare"
			"$qemu_img" check -q "$tmp/i/img" >/dev/null 2>&1 || bad="$bad check" ;;
		esac
	fi
	if [ -n "$bad" ]; then
		fails=$((fails + 1))
		echo "FAIL [$spec] resize ${args[*]}:$bad"
		diff <(cat "$tmp/q.out" "$tmp/q.errn") <(cat "$tmp/i.out" "$tmp/i.err") | head -10
	fi
}

# ---- §1.2 argument handling ----
check raw:1M
check raw:1M IMG
check raw:1M IMG 2M
check raw:1M IMG +1M
check raw:1M IMG 1M
check raw:2M IMG --shrink -1M
check raw:2M --shrink IMG -1M
check raw:2M IMG -1M --shrink
check raw:1M IMG 2M --preallocation
check raw:1M IMG --preallocation 1G
check raw:1M --preallocation IMG 1G
check raw:1M IMG -f
check raw:1M -f IMG 1G
check raw:1M -- IMG +1M
check raw:1M IMG -- +1M
check raw:1M -f raw IMG 2M
check raw:1M -f qcow2 -f raw IMG 2M
check raw:1M -U IMG 2M
check raw:1M --bogus IMG 2M
check raw:1M -x IMG 2M
check raw:1M IMG extra 2M
check raw:1M -q IMG 2M
check raw:1M -q -f raw IMG 2M
check raw:1M -qf raw IMG 2M
check raw:1M --preallocation=bogus IMG 2M
check raw:1M --preallocation bogus IMG 2M
check raw:1M --preallocation=off IMG 2M
check raw:1M --shr IMG 2M
check raw:1M -f nosuch IMG 2M
check none IMG 1M
check none -f nosuch IMG 1M
check none -f qcow2 IMG 1M
check none IMG 1Q
check dir IMG 1M

# ---- §1.4 new size, checks and their order ----
check raw:1000 IMG 1000
check raw:1000 IMG 1001
check raw:1000 IMG +0
check raw:1000 IMG -0
check raw:1000 IMG +10
check raw:1000 --shrink IMG -10
check raw:1000 --shrink IMG 1000
check raw:1000 --preallocation=falloc IMG +0
check raw:1000 --preallocation=falloc IMG +10
check raw:1M --shrink IMG 0
check raw:1M IMG 0
check raw:2M IMG -2M
check raw:2M IMG -3M
check raw:2M --shrink IMG -2M
check raw:1M IMG 8E
check raw:1M IMG 9E
check raw:1M IMG +8E
check raw:1M IMG 0xffffffffffffffff
check raw:1M IMG 18446744073709551615
check raw:1M IMG 16E
check raw:1M IMG +16E
check raw:1M IMG 18446744073709551616
check raw:1M IMG 9223372036739483648
check raw:1M IMG 9223372035781033985
check raw:1M IMG 9223372035781033984
check raw:1M -f raw IMG 1p
check raw:1M -f raw IMG 7E
check raw:1M --shrink -f raw IMG -9E
check raw:1M IMG 1M
check raw:1M --preallocation=falloc IMG 1M
check raw:2M --preallocation=falloc --shrink IMG 1M
check raw:2M --preallocation=falloc IMG 1M

# ---- §1.5 / §2 raw specifics ----
for m in off falloc full metadata; do
	check raw:1M --preallocation=$m IMG +1M
	check raw:1000 -f raw --preallocation=$m IMG 3000
done
for s in 1 0x10 1.0 100 511 512 513 4095 4096 5000 1M; do
	check raw0 -f raw IMG "$s"
done
check raw0 -f raw --preallocation=falloc IMG 100
check raw0 -f raw --preallocation=falloc IMG 5000
check raw0 -f raw --preallocation=full IMG 100
check raw0 IMG 100

# ---- qcow2: everything decided before the guest, and a few real resizes ----
check qcow2:1G IMG 1000
check qcow2:1G --shrink IMG 1000
check qcow2:1G IMG +1
check qcow2:1G IMG 0
check qcow2:1G IMG 8E
check qcow2:1G IMG 16E
check qcow2:1G IMG 9223372036739483648
check qcow2:1G --preallocation=falloc IMG 1G
check qcow2:1G --preallocation=full --shrink IMG 512M
check qcow2:1G IMG 512M
check qcow2:1G -f nosuch IMG 2G
check qcow2:1G -f qcow2 IMG 1Q
check qcow2:1G IMG +1G
check qcow2:1G IMG 2G
check qcow2:1G -q IMG 1G
check qcow2:1G --shrink IMG 512M
check qcow2:1G -f qcow2 IMG +64M
check vmdk:1G IMG 512M

# ---- §1.3 the size grammar, as absolute sizes on a raw image ----
while IFS= read -r s; do
	check raw:1M -f raw --shrink IMG "$s"
done <<'EOF'
0
1
512
010
08
1b
1B
1k
1K
1m
1g
1.5G
12.345M
1.0005k
1.0004k
0.1M
1.k
1.
1.0
1.0b
.5k
.5
1.5
1.5b
0.5
0.5k
1e3
1.5e3
1.5e3k
1.5e
inf
nan
  +1k
 1M
+1M
++1M
1M 
1 M
1_000
1,5G
1KB
1kB
1GB
1GiB
1Gb
1Z
0x100000
0X10
0x1M
0x1.8M
0x
00x10
0x1b
0x10000000000000M
1.9999999999999999999999999999k
1.00000000000000000001B
1.00000000000000000001k
3.999999999999999999999999G
0.00048828125k
99999999999999999999999k
-99999999999999999999999
-1
-1G
--1G
-+1M
+
-
1..5k
1.5kk
16Ex

EOF

echo "$cases cases, $fails failed"
[ "$fails" = 0 ] || exit 1
guest_skips_end
