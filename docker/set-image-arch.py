#!/usr/bin/env python3
"""Sets the platform recorded in a local image's config (docker save | edit | docker load).

The classic builder (no BuildKit/buildx, as with Debian's docker.io 20.10) cannot build
`FROM scratch` for another platform: `docker build --platform linux/arm64` fails with "does
not match the specified platform". The image content is right either way, since nothing runs
at build time; only the recorded architecture is the builder's. This rewrites it:

    docker build --build-arg TARGETARCH=arm64 -t NAME:TAG -f docker/...Dockerfile dist/
    docker/set-image-arch.py NAME:TAG arm64

With buildx (`docker buildx build --platform linux/amd64,linux/arm64 ...`) none of this is
needed.
"""

import hashlib
import io
import json
import subprocess
import sys
import tarfile

VARIANTS = {"arm64": "v8"}


def main() -> int:
    if len(sys.argv) != 3 or sys.argv[2] not in ("amd64", "arm64"):
        print("usage: set-image-arch.py IMAGE:TAG amd64|arm64", file=sys.stderr)
        return 64
    image, arch = sys.argv[1], sys.argv[2]
    docker = "/usr/bin/docker"
    saved = subprocess.run([docker, "save", image], check=True, capture_output=True).stdout
    src = tarfile.open(fileobj=io.BytesIO(saved))
    manifest = json.load(src.extractfile("manifest.json"))
    if len(manifest) != 1:
        print(f"expected one image in `docker save {image}`, got {len(manifest)}", file=sys.stderr)
        return 1
    old_name = manifest[0]["Config"]
    config = json.load(src.extractfile(old_name))
    config["architecture"] = arch
    config["os"] = "linux"
    if arch in VARIANTS:
        config["variant"] = VARIANTS[arch]
    else:
        config.pop("variant", None)
    new_bytes = json.dumps(config, separators=(",", ":")).encode()
    new_name = hashlib.sha256(new_bytes).hexdigest() + ".json"
    manifest[0]["Config"] = new_name
    manifest[0]["RepoTags"] = [image]

    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as dst:
        for member in src.getmembers():
            if member.name in (old_name, "manifest.json"):
                continue
            dst.addfile(member, src.extractfile(member) if member.isfile() else None)
        for name, data in ((new_name, new_bytes), ("manifest.json", json.dumps(manifest).encode())):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            dst.addfile(info, io.BytesIO(data))
    subprocess.run([docker, "load", "-q"], input=out.getvalue(), check=True, stdout=subprocess.DEVNULL)
    print(f"{image}: architecture {arch}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
