"""Image facts: which image a reference resolves to on a node, and what its registry says, pulling nothing.

Each fact's command (argv for the node's container engine) sits next to its parser.
"""

from __future__ import annotations

import ipaddress
import json


def image_id(runtime: str, image: str) -> tuple[str, ...]:
    """The id and repository digests of ``image`` as the node's engine holds it (parse_image_id reads them)."""
    return (runtime, "image", "inspect", "--format", "{{.Id}} {{json .RepoDigests}}", image)


def parse_image_id(output: str, image: str) -> tuple[str, str | None]:
    """(image id, repository digest) from ``image_id``'s output; the digest is None for a local-only image."""
    image_id, _, digests = output.strip().partition(" ")
    repository = image.split("@", 1)[0].rsplit(":", 1)[0] if ":" in image.rsplit("/", 1)[-1] else image
    found = [d for d in json.loads(digests or "[]") if d.split("@", 1)[0] == repository]
    return image_id, (found[0].split("@", 1)[1] if found else None)


def registry_of(image: str) -> str:
    """The registry host of an image reference, by the Docker CLI's rule: the first path component when it
    has a ``.`` or ``:`` or is ``localhost`` (``10.0.0.3:5000/repo:1`` -> ``10.0.0.3:5000``), else Docker Hub
    (``docker.io``)."""
    first, sep, _ = image.partition("/")
    return first if sep and ("." in first or ":" in first or first == "localhost") else "docker.io"


def registry_config(runtime: str) -> tuple[str, ...]:
    """The engine's registry settings (``RegistryConfig`` of `docker info`: which registries it reaches over
    plain HTTP or unverified TLS)."""
    return (runtime, "info", "--format", "{{json .RegistryConfig}}")


def insecure_registry(image: str, config: str) -> bool:
    """Whether the node's engine treats ``image``'s registry as insecure (plain HTTP allowed), from
    ``registry_config``'s output: its ``IndexConfigs[host].Secure`` is false, or its address is in one of
    ``InsecureRegistryCIDRs``. Output that is not that JSON: False (secure, as the CLI defaults)."""
    host = registry_of(image)
    try:
        doc = json.loads(config or "null") or {}
        index = (doc.get("IndexConfigs") or {}).get(host)
        if index is not None:
            return index.get("Secure") is False
        address = ipaddress.ip_address(host.rsplit(":", 1)[0] if host.count(":") == 1 else host)
        return any(address in ipaddress.ip_network(cidr) for cidr in doc.get("InsecureRegistryCIDRs") or ())
    except (ValueError, AttributeError, TypeError):  # not JSON, or a host name rather than an address
        return False


def manifest_inspect(runtime: str, image: str, insecure: bool) -> tuple[str, ...] | None:
    """Read ``image``'s manifest from its registry, pulling nothing (the docker CLI's own registry client,
    with the login user's credentials, as a pull); None for podman, whose `manifest inspect` prints no
    descriptor. ``insecure``: the engine itself reaches that registry over plain HTTP (insecure_registry)."""
    if runtime != "docker":
        return None
    return (runtime, "manifest", "inspect", "--verbose", *(("--insecure",) if insecure else ()), image)


def parse_manifest_digest(output: str) -> str | None:
    """The registry digest (``sha256:...``) from `docker manifest inspect --verbose`: its ``Descriptor.digest``
    for an image's manifest; None for a multi-platform list (it prints each platform's manifest, not the
    list's own digest, which is what a pull records) or output that is not that JSON."""
    try:
        doc = json.loads(output)
        digest = doc["Descriptor"]["digest"] if isinstance(doc, dict) else None
    except (ValueError, KeyError, TypeError):
        return None
    return digest if isinstance(digest, str) and digest.startswith("sha256:") else None


NO_SUCH_TAG = ("manifest unknown", "no such manifest", "manifest_unknown")  # docker CLI / registry API wording


def says_no_such_image(output: str) -> bool:
    """Whether a failed `docker pull` / `docker manifest inspect` output is the registry's definite answer that
    the image's tag (or digest) does not exist ("manifest unknown", "no such manifest"), as opposed to a
    registry that could not be asked (down, refused, unauthorised): only that answer is the inventory's fault."""
    text = output.lower()
    return any(words in text for words in NO_SUCH_TAG)
