#!/usr/bin/env python3
"""tests/iotests/debsrc.py OUT.sources URI... — write the machine's own Debian
apt entries as deb-src entries into OUT.sources (deb822), for a private apt
configuration that fetches QEMU's source package. Only entries whose URI is
one of the given URIs (those `apt-cache policy qemu-utils` lists) are kept, so
third-party repositories without source indexes are left out. Nothing under
/etc/apt is changed; no host name is written here: every one comes from the
machine's sources."""
import glob
import os
import sys

ETC = os.environ.get("APT_ETC", "/etc/apt")


def norm(uri):
    return uri.rstrip("/")


def list_entries(path):
    """One-line style: deb [opts] uri suite [component...]."""
    out = []
    for line in open(path, encoding="utf-8", errors="replace"):
        words = line.split("#", 1)[0].split()
        if not words or words[0] != "deb":
            continue
        words = words[1:]
        opts = {}
        if words and words[0].startswith("["):
            text = []
            while words:
                w = words.pop(0)
                text.append(w)
                if w.endswith("]"):
                    break
            for kv in " ".join(text).strip("[]").split():
                if "=" in kv:
                    k, v = kv.split("=", 1)
                    opts[k] = v
        if len(words) < 2:
            continue
        e = {"URIs": words[0], "Suites": words[1], "Components": " ".join(words[2:])}
        if "signed-by" in opts:
            e["Signed-By"] = opts["signed-by"]
        out.append(e)
    return out


def deb822_entries(path):
    out = []
    stanza = {}
    key = None
    lines = open(path, encoding="utf-8", errors="replace").read().splitlines() + [""]
    for line in lines:
        if line.startswith("#"):
            continue
        if not line.strip():
            if stanza:
                out.append(stanza)
            stanza, key = {}, None
            continue
        if line[0] in " \t" and key:
            stanza[key] += "\n" + line
            continue
        if ":" in line:
            key, value = line.split(":", 1)
            stanza[key.strip()] = value.strip()
    keep = []
    for s in out:
        if "deb" not in s.get("Types", "").split():
            continue
        if s.get("Enabled", "yes").lower() == "no":
            continue
        keep.append(s)
    return keep


def main():
    if len(sys.argv) < 2:
        sys.exit("usage: debsrc.py OUT.sources [URI...]")
    wanted = {norm(u) for u in sys.argv[2:]}
    entries = []
    if os.path.exists(os.path.join(ETC, "sources.list")):
        entries += list_entries(os.path.join(ETC, "sources.list"))
    for path in sorted(glob.glob(os.path.join(ETC, "sources.list.d", "*.list"))):
        entries += list_entries(path)
    for path in sorted(glob.glob(os.path.join(ETC, "sources.list.d", "*.sources"))):
        entries += deb822_entries(path)
    out = []
    for e in entries:
        uris = [u for u in e["URIs"].split() if not wanted or norm(u) in wanted]
        if not uris:
            continue
        s = dict(e)
        s["Types"] = "deb-src"
        s["URIs"] = " ".join(uris)
        out.append(s)
    if not out:
        sys.exit("debsrc.py: no apt entry of the machine serves qemu-utils; "
                 "add a deb-src entry by hand")
    with open(sys.argv[1], "w", encoding="utf-8") as f:
        for s in out:
            for k in ["Types", "URIs", "Suites", "Components"]:
                if s.get(k):
                    f.write(f"{k}: {s[k]}\n")
            for k, v in s.items():
                if k not in ("Types", "URIs", "Suites", "Components", "Enabled"):
                    f.write(f"{k}: {v}\n")
            f.write("\n")


main()
