#!/usr/bin/env python3
"""Image pinning, explicit and checkable.

  pin-images.py check   offline: builds k8s/ and lists every container image that is not pinned by digest
                        (name[:tag]@sha256:<64 hex>), and every unpinned FROM of the release Dockerfile; exit 1 if any.
  pin-images.py pin     online: resolves the tag of each `images:` entry of k8s/kustomization.yaml and each FROM of
                        the Dockerfile to its current digest and writes it (`digest:` / `FROM image:tag@sha256:...`).

Resolution asks the registry through the first of `crane digest`, `skopeo inspect`, `docker buildx imagetools
inspect` found on PATH (or the command in $PIN_RESOLVER, called as `$PIN_RESOLVER IMAGE:TAG`, printing the digest).
Nothing here invents a digest: without a resolver, `pin` fails and the manifests keep their visible tags.
Run `pin` when cutting a release (after pushing the image), review the diff, commit; `check` is the release gate."""

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

REPO = Path(os.environ.get("PIN_REPO", Path(__file__).resolve().parent.parent))
KUSTOMIZATION = REPO / "k8s" / "kustomization.yaml"
DOCKERFILE = REPO / "Dockerfile"
DIGEST = re.compile(r"@sha256:[0-9a-f]{64}$")
FROM = re.compile(r"^(FROM\s+)(\S+)(.*)$", re.M)


def built_images() -> list[str]:
    out = subprocess.run(["kubectl", "kustomize", str(REPO / "k8s")], capture_output=True, text=True, check=True)
    images = []
    for doc in yaml.safe_load_all(out.stdout):
        spec = (doc or {}).get("spec", {}).get("template", {}).get("spec", {})
        for c in spec.get("initContainers", []) + spec.get("containers", []):
            images.append(c["image"])
    return images


def dockerfile_bases() -> list[str]:
    stages = set()
    bases = []
    for m in FROM.finditer(DOCKERFILE.read_text()):
        image = m.group(2)
        if image not in stages and image != "scratch":
            bases.append(image)
        if alias := re.search(r"\bAS\s+(\S+)", m.group(3), re.I):
            stages.add(alias.group(1))
    return bases


def check() -> int:
    unpinned = [f"k8s/: {i}" for i in built_images() if not DIGEST.search(i)]
    unpinned += [f"Dockerfile: {i}" for i in dockerfile_bases() if not DIGEST.search(i)]
    if unpinned:
        print("not pinned by digest (run `make pin-images` online, review, commit):")
        print("\n".join(f"  {u}" for u in unpinned))
        return 1
    print("every image is pinned by digest")
    return 0


def resolver() -> list[str]:
    if cmd := os.environ.get("PIN_RESOLVER"):
        return cmd.split()
    for tool, args in (("crane", ["crane", "digest"]),
                       ("skopeo", ["skopeo", "inspect", "--format", "{{.Digest}}"]),
                       ("docker", ["docker", "buildx", "imagetools", "inspect", "--format", "{{json .Manifest.Digest}}"])):
        if shutil.which(tool):
            return args
    sys.exit("no resolver: install crane or skopeo (or set PIN_RESOLVER); nothing was changed")


def resolve(ref: str) -> str:
    cmd = resolver()
    ref = ref.split("@")[0]
    if cmd[0] == "skopeo":
        ref = f"docker://{ref}"
    digest = subprocess.run([*cmd, ref], capture_output=True, text=True, check=True).stdout.strip().strip('"')
    if not re.fullmatch(r"sha256:[0-9a-f]{64}", digest):
        sys.exit(f"{ref}: the resolver answered {digest!r}, not a sha256 digest; nothing was changed")
    return digest


def pin() -> int:
    kustomization = yaml.safe_load(KUSTOMIZATION.read_text())
    text = KUSTOMIZATION.read_text()
    for entry in kustomization.get("images", []):
        name, tag = entry.get("newName", entry["name"]), entry.get("newTag", "latest")
        digest = resolve(f"{name}:{tag}")
        block = re.compile(rf"(  - name: {re.escape(entry['name'])}\n(?:    (?!digest:).*\n)*)(    digest: .*\n)?")
        text = block.sub(lambda m: m.group(1) + f"    digest: {digest}\n", text, count=1)
        print(f"k8s/kustomization.yaml: {name}:{tag} -> {digest}")
    KUSTOMIZATION.write_text(text)

    def pin_from(m: re.Match) -> str:
        image = m.group(2)
        if image == "scratch" or image not in dockerfile_bases():
            return m.group(0)
        digest = resolve(image)
        print(f"Dockerfile: {image.split('@')[0]} -> {digest}")
        return f"{m.group(1)}{image.split('@')[0]}@{digest}{m.group(3)}"

    DOCKERFILE.write_text(FROM.sub(pin_from, DOCKERFILE.read_text()))
    return check()


if __name__ == "__main__":
    commands = {"check": check, "pin": pin}
    if len(sys.argv) != 2 or sys.argv[1] not in commands:
        sys.exit(__doc__)
    sys.exit(commands[sys.argv[1]]())
