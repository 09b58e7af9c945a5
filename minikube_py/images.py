"""The lab's local images, made without a registry.

No registry can be reached from the lab's machine, so the two images every pod needs are
built here with `docker import` from a root filesystem assembled in memory: the static
busybox binary with every applet linked at the path `busybox --list-full` gives, plus a
minimal /etc. `minikube-py/busybox` is that filesystem with a shell as its command;
`minikube-py/pause` is the same filesystem whose command sleeps until SIGTERM and then
exits at once (a shell trap around a background `sleep`, since PID 1 ignores signals it
has no handler for).
"""

from __future__ import annotations

import io
import json
import subprocess
import tarfile
import time

import docker
import docker.errors

BUSYBOX_BINARY = "/usr/bin/busybox"
PAUSE_IMAGE = "minikube-py/pause:latest"
BUSYBOX_IMAGE = "minikube-py/busybox:latest"

PAUSE_COMMAND = ["/bin/sh", "-c", "trap 'exit 0' TERM INT; sleep 2147483647 & wait"]
BUSYBOX_COMMAND = ["/bin/sh"]

_ETC_FILES = {
    "etc/passwd": (
        "root:x:0:0:root:/root:/bin/sh\n"
        "daemon:x:1:1:daemon:/usr/sbin:/bin/false\n"
        "www-data:x:33:33:www-data:/var/www:/bin/false\n"
        "nobody:x:65534:65534:nobody:/nonexistent:/bin/false\n"
    ),
    "etc/group": "root:x:0:\ndaemon:x:1:\nwww-data:x:33:\nnogroup:x:65534:\nnobody:x:65534:\n",
    "etc/shadow": "root:*::0:::::\nnobody:*::0:::::\n",
    "etc/nsswitch.conf": "hosts: files dns\n",
    "etc/hostname": "localhost\n",
    "etc/hosts": "127.0.0.1\tlocalhost\n",
}
_DIRECTORIES = {
    "bin": 0o755,
    "sbin": 0o755,
    "usr": 0o755,
    "usr/bin": 0o755,
    "usr/sbin": 0o755,
    "etc": 0o755,
    "dev": 0o755,
    "proc": 0o555,
    "sys": 0o555,
    "root": 0o700,
    "home": 0o755,
    "var": 0o755,
    "var/www": 0o755,
    "tmp": 0o1777,
    "var/tmp": 0o1777,
}


def applet_paths(busybox: str = BUSYBOX_BINARY) -> list[str]:
    """Where each applet lives, relative to the root, e.g. `bin/sh`, `usr/bin/wget`."""
    listing = subprocess.run(
        [busybox, "--list-full"], capture_output=True, text=True, check=True
    ).stdout
    return sorted({line.strip().lstrip("/") for line in listing.splitlines() if line.strip()})


def build_rootfs(busybox: str = BUSYBOX_BINARY) -> bytes:
    """A tar of the root filesystem: busybox at /bin/busybox, every applet linked to it."""
    buffer = io.BytesIO()
    mtime = time.time()
    with tarfile.open(fileobj=buffer, mode="w") as tar:

        def add(info: tarfile.TarInfo, data: bytes | None = None) -> None:
            info.mtime = mtime
            info.uid = info.gid = 0
            tar.addfile(info, io.BytesIO(data) if data is not None else None)

        for path, mode in _DIRECTORIES.items():
            info = tarfile.TarInfo(path)
            info.type = tarfile.DIRTYPE
            info.mode = mode
            add(info)
        with open(busybox, "rb") as f:
            binary = f.read()
        info = tarfile.TarInfo("bin/busybox")
        info.size = len(binary)
        info.mode = 0o755
        add(info, binary)
        for path in applet_paths(busybox):
            if path == "bin/busybox":
                continue
            link = tarfile.TarInfo(path)
            link.type = tarfile.SYMTYPE
            link.linkname = "/bin/busybox"
            link.mode = 0o777
            add(link)
        for path, text in _ETC_FILES.items():
            data = text.encode()
            info = tarfile.TarInfo(path)
            info.size = len(data)
            info.mode = 0o640 if path == "etc/shadow" else 0o644
            add(info, data)
    return buffer.getvalue()


def _dockerfile_changes(command: list[str]) -> list[str]:
    return [
        "ENV PATH=/usr/sbin:/usr/bin:/sbin:/bin",
        f"CMD {json.dumps(command)}",
    ]


def image_exists(client: docker.DockerClient, name: str) -> bool:
    try:
        client.images.get(name)
    except docker.errors.ImageNotFound:
        return False
    return True


def ensure_images(client: docker.DockerClient) -> list[str]:
    """Build the lab's images that are missing; returns the names it built."""
    wanted = {PAUSE_IMAGE: PAUSE_COMMAND, BUSYBOX_IMAGE: BUSYBOX_COMMAND}
    missing = [name for name in wanted if not image_exists(client, name)]
    if not missing:
        return []
    rootfs = build_rootfs()
    for name in missing:
        repository, tag = name.rsplit(":", 1)
        client.api.import_image_from_data(
            rootfs, repository=repository, tag=tag, changes=_dockerfile_changes(wanted[name])
        )
    return missing
