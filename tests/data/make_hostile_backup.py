#!/usr/bin/env python3
"""Writes a hostile backup beside a real one: the real backup's members plus one hostile member
(named in the manifest, so the manifest and checksums are consistent and only the path or type
is the attack). Usage: make_hostile_backup.py BACKUP_DIR SOURCE_ID NEW_ID KIND
KIND: dotdot | absolute | symlink-escape | hardlink | device | manifest-outside"""
import hashlib, io, json, os, sys, tarfile

backup_dir, source_id, new_id, kind = sys.argv[1:5]
manifest = json.load(open(os.path.join(backup_dir, source_id + ".manifest.json")))
manifest["id"] = new_id
manifest["archive"] = new_id + ".tar.gz"
for f in manifest["files"]:
    f["backup"] = new_id

buf = io.BytesIO()
with tarfile.open(fileobj=buf, mode="w:gz", format=tarfile.PAX_FORMAT) as out:
    with tarfile.open(os.path.join(backup_dir, source_id + ".tar.gz")) as src:
        for m in src.getmembers():
            if m.name == ".lakevault/manifest.json":
                continue
            out.addfile(m, src.extractfile(m) if m.isfile() else None)

    def add_file(name, data):
        info = tarfile.TarInfo(name)
        info.size = len(data)
        info.mode = 0o644
        out.addfile(info, io.BytesIO(data))
        manifest["files"].append({"backup": new_id, "mode": 420, "mtime": 0, "path": name,
                                  "sha256": hashlib.sha256(data).hexdigest(), "size": len(data)})

    evil = b"evil\n"
    if kind == "dotdot":
        add_file("data/lake/../../../evil-dotdot.txt", evil)
    elif kind == "absolute":
        add_file("/tmp/lakevault-evil-absolute.txt", evil)
    elif kind == "manifest-outside":
        add_file("../evil-outside.txt", evil)
    elif kind == "symlink-escape":
        link = tarfile.TarInfo("data/lake/option_legs/escape")
        link.type = tarfile.SYMTYPE
        link.linkname = "../../../../../../../tmp"
        out.addfile(link)
        manifest["files"].append({"backup": new_id, "mode": 511, "mtime": 0,
                                  "path": link.name, "link": link.linkname, "sha256": "", "size": 0})
        add_file("data/lake/option_legs/escape/lakevault-evil-symlink.txt", evil)
    elif kind == "hardlink":
        hl = tarfile.TarInfo("data/lake/option_legs/hardlink")
        hl.type = tarfile.LNKTYPE
        hl.linkname = "/etc/passwd"
        out.addfile(hl)
        manifest["files"].append({"backup": new_id, "mode": 420, "mtime": 0, "path": hl.name,
                                  "sha256": hashlib.sha256(b"").hexdigest(), "size": 0})
    elif kind == "device":
        dev = tarfile.TarInfo("data/lake/option_legs/device")
        dev.type = tarfile.CHRTYPE
        dev.devmajor, dev.devminor = 1, 3
        out.addfile(dev)
        manifest["files"].append({"backup": new_id, "mode": 420, "mtime": 0, "path": dev.name,
                                  "sha256": hashlib.sha256(b"").hexdigest(), "size": 0})
    else:
        sys.exit("unknown kind " + kind)
    text = json.dumps(manifest, indent=2).encode()
    info = tarfile.TarInfo(".lakevault/manifest.json")
    info.size = len(text)
    info.mode = 0o600
    out.addfile(info, io.BytesIO(text))

data = buf.getvalue()
archive = os.path.join(backup_dir, new_id + ".tar.gz")
with open(archive, "wb") as f:
    f.write(data)
with open(archive + ".sha256", "w") as f:
    f.write(hashlib.sha256(data).hexdigest() + "  " + new_id + ".tar.gz\n")
with open(os.path.join(backup_dir, new_id + ".manifest.json"), "wb") as f:
    f.write(text)
for p in (archive, archive + ".sha256", os.path.join(backup_dir, new_id + ".manifest.json")):
    os.chmod(p, 0o600)
