#!/usr/bin/env bash
# tests/compat/cli_opts.sh INSTAR QEMU_IMG — --object and --image-opts as
# qemu-img 7.2 takes them: the same exit code and message ("qemu-img: " read
# as "instar: ") on copies of raw images (resized on the host, no guest),
# and what instar refuses of them refused with a message, the file unchanged.
set -u
. "$(dirname "$0")/lib.sh"
cli_init "$1" "$2"
printf 'abc' >sec.txt
"$QI" create -q -f raw src.raw 1M
"$QI" create -q -f qcow2 src.qcow2 1M
qi_create_keyed src.eqcow2 1M -f qcow2 --object secret,id=s0,data=x \
	-o encrypt.format=luks,encrypt.key-secret=s0,encrypt.iter-time=10

# same SRC ARGS...: both tools on a copy named "img" of SRC; ARGS end with
# the image argument (the size 2M is added).
same() {
	local src=$1 qrc irc
	shift
	ncases=$((ncases + 1))
	mkdir -p q i
	cp "$src" q/img
	cp "$src" i/img
	cp sec.txt q/
	cp sec.txt i/
	(cd q && "$QI" resize "$@" 2M >../q.out 2>../q.err)
	qrc=$?
	(cd i && "$instar" resize "$@" 2M >../i.out 2>../i.err)
	irc=$?
	sed -e 's/^qemu-img: /instar: /' q.err >q.errn
	if [ "$qrc" != "$irc" ] || ! cmp -s q.errn i.err || ! cmp -s q.out i.out ||
		! cmp -s q/img i/img; then
		fails=$((fails + 1))
		echo "FAIL $src $*: rc qemu $qrc instar $irc"
		diff q.errn i.err
		cmp q/img i/img
	fi
	rm -rf q i
}

# refused SRC WANT ARGS...: instar exits 1, says WANT, changes nothing.
refused() {
	local src=$1 want=$2
	shift 2
	ncases=$((ncases + 1))
	cp "$src" img
	if "$instar" resize "$@" 2M >/dev/null 2>i.err; then
		fails=$((fails + 1))
		echo "FAIL $*: accepted"
	fi
	grep -qF -- "$want" i.err || { fails=$((fails + 1)); echo "FAIL $*: said"; cat i.err; }
	cmp -s "$src" img || { fails=$((fails + 1)); echo "FAIL $*: changed the image"; }
	rm -f img
}

# --object: accepted secrets, and qemu's messages for bad ones
for o in 'secret,id=s0,data=x' 'secret,id=s0,data=x,format=base64' \
	'secret,id=s0,file=sec.txt' 'secret,id=s0,data=x,format=raw' \
	'qom-type=secret,id=s0,data=x' 'secret,id=s0,data=x,data=y' 'secret,id=s0,data=' \
	'secret,id=s0,data=x,iv=abc' 'secret,id=a.b-c_d,data=x' \
	'secret' 'secret,id=s0' 'secret,id=s0,data=x,format=hex' 'foo,id=x' \
	'secret,id=s0,data=x,bogus=1' 'secret,id=s0,data=x,a.b=1' \
	'secret,id=s0,data=x,file=sec.txt' 'secret,id=s0,file=nonexist' 'secret,id=s0,file=' \
	'secret,id=0s,data=x' 'secret,id=s0,data=x,keyid=k' 'id=s0,data=x' 'secret,data=x' \
	'' 'secret,,id=s0' 'secret,id=s0,data' 'secret,id=s0,data=x,=3'; do
	same src.raw -f raw --object "$o" img
done
same src.raw -f raw --object secret,id=s0,data=x --object secret,id=s0,data=y img
same src.raw -f raw --object secret,id=s0,data=x --object secret,id=s1,data=y img
# types qemu-img knows that instar does not take
refused src.raw "Object type 'iothread' is not supported by instar" \
	--object iothread,id=t -f raw img
refused src.raw "Object type 'tls-creds-x509' is not supported by instar" \
	--object tls-creds-x509,id=t -f raw img

# --image-opts
for o in 'driver=raw,file.driver=file,file.filename=img,file.locking=off' \
	'driver=raw,file.filename=img' 'driver=raw,file.filename=img,file.locking=on' \
	'driver=raw,file.driver=file,file.filename=img,file.locking=auto' \
	'file.filename=img' 'driver=raw,file.filename=img,file.locking=maybe' \
	'driver=raw,file.filename=img,file.bogus=1' 'driver=raw,file.filename=img,bogus=1' \
	'driver=foo,file.filename=img' 'driver=raw' 'driver=raw,file.filename=nonexist' \
	'driver=raw,file.filename=img,,x' 'driver=raw,,file.filename=img' \
	'driver=raw,file.filename=img,=x' 'driver=qcow2,file.filename=img' \
	'driver=vmdk,file.filename=img' 'driver=vhdx,file.filename=img' \
	'driver=qcow2,file.filename=img,lazy-refcounts=maybe' \
	'driver=luks,file.filename=img' 'driver=luks,key-secret=s1,file.filename=img' \
	'img' 'x,driver=raw,file.filename=img' 'driver=raw,file.filename=img,x' '' \
	'driver=raw,file.filename=img,driver=qcow2' 'id=foo,driver=raw,file.filename=img'; do
	same src.raw --image-opts "$o"
done
same src.raw -f raw --image-opts driver=raw,file.filename=img
same src.raw --object secret,id=s0,data=x --image-opts 'driver=luks,key-secret=s0,file.filename=img'
# an encrypted qcow2 (resized without its secret: README): a secret named but
# not given, and malformed secrets, fail as in qemu before any guest
for o in 'secret,id=s0' 'secret,id=s0,data=x,bogus=1' 'secret,id=s0,data=x,format=hex'; do
	same src.eqcow2 --object "$o" --image-opts 'driver=qcow2,encrypt.key-secret=s0,file.filename=img'
done
same src.eqcow2 --image-opts 'driver=qcow2,encrypt.key-secret=s1,file.filename=img'
same src.eqcow2 --object secret,id=s0,data=x \
	--image-opts 'driver=qcow2,encrypt.key-secret=s1,file.filename=img'
# encrypt.format (qcow2 only): checked against the header's method, before the
# secret is looked up; an AES qcow2 (which qemu-img 7.2 still creates). What
# qemu accepts is resized by the guest: end to end only where it can boot.
"$QI" create -q -f qcow2 --object secret,id=s0,data=x \
	-o encrypt.format=aes,encrypt.key-secret=s0 src.aqcow2 1M
qi_create_keyed src.luks 1M -f luks --object secret,id=s0,data=x -o key-secret=s0,iter-time=10
e2e_or_left_out "the encrypt.format= cases qemu-img accepts (the guest resizes them)"
for f in luks aes foo ''; do
	for src in src.eqcow2 src.aqcow2 src.qcow2; do
		case $src:$f in src.eqcow2:luks | src.aqcow2:aes) [ -n "$E2E" ] || continue ;; esac
		same "$src" --object secret,id=s0,data=x \
			--image-opts "driver=qcow2,encrypt.format=$f,encrypt.key-secret=s0,file.filename=img"
	done
done
same src.qcow2 --image-opts 'driver=qcow2,encrypt.format=luks,encrypt.key-secret=s9,file.filename=img'
same src.eqcow2 --image-opts 'driver=qcow2,encrypt.format=luks,encrypt.key-secret=s9,file.filename=img'
same src.eqcow2 --image-opts 'driver=qcow2,encrypt.format=aes,encrypt.key-secret=s9,file.filename=img'
[ -z "$E2E" ] || same src.qcow2 --image-opts 'driver=qcow2,encrypt.key-secret=s9,file.filename=img'
same src.luks --object secret,id=s0,data=x \
	--image-opts 'driver=luks,encrypt.format=luks,key-secret=s0,file.filename=img'
same src.raw --image-opts 'driver=raw,encrypt.format=luks,file.filename=img'
# iotest 102's form, on a qcow2 file opened as raw
same src.qcow2 --image-opts 'driver=raw,file.driver=file,file.filename=img,file.locking=off'
# what instar cannot honour, in qemu's words
refused src.raw "Block format 'raw' does not support the option 'offset'" \
	--image-opts driver=raw,file.filename=img,offset=512
refused src.raw "Protocol driver 'nbd' is not supported by instar" \
	--image-opts driver=raw,file.driver=nbd,file.filename=img

echo "option cases: $ncases, $fails failed"
[ "$fails" = 0 ]
