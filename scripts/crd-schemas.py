#!/usr/bin/env python3
"""Teach kubernetes-validate the prometheus-operator resources the chart renders.

kubernetes-validate (PyPI) carries the schemas of Kubernetes' own kinds only; ServiceMonitor
and PrometheusRule (monitoring.coreos.com/v1) are CustomResourceDefinitions. Their real
schemas — prometheus-operator v0.89.0's CRDs (`stripped-down-crds.yaml`: no descriptions,
every type, pattern, enum and `required` kept), as the kopium crate (crates.io, Apache-2.0)
ships them in its tests/ — are turned into kubernetes-validate's schema layout:

- each CRD's `openAPIV3Schema` becomes `<kind>-monitoring-v1.json` in the `local` and
  `local-strict` schema directories of the installed kubernetes-validate, for every
  Kubernetes version it knows;
- `metadata` refers to Kubernetes' ObjectMeta definition (the CRD only says "object");
- `apiVersion` and `kind` are pinned to the CRD's group/version and kind;
- OpenAPI's `nullable: true` becomes JSON Schema's `null` type;
- the strict variant forbids unknown properties wherever the CRD lists properties and says
  nothing about others, as kubernetes-validate's own strict schemas do (the API server
  prunes unknown fields of a CRD silently; strict validation catches the typo instead).

Usage: crd-schemas.py [--check]  (--check: exit 0 if installed, 1 if not; installs nothing)
"""

import copy
import hashlib
import io
import json
import pathlib
import sys
import tarfile
import urllib.request

import kubernetes_validate
import yaml

CRATE = "kopium"
VERSION = "0.24.1"
SHA256 = "15cc3a0ffd281ea6e36696c9a2d3a6a7a9e6ea1cf0d35b5dab54c021dade6fc9"
CRDS = {
    "servicemonitor": "tests/servicemonitors.monitoring.coreos.com.yaml",
    "prometheusrule": "tests/prometheusrules.monitoring.coreos.com.yaml",
}
SOURCE = f"{CRATE} {VERSION}"


def schema_root() -> pathlib.Path:
    return pathlib.Path(kubernetes_validate.__file__).parent / "kubernetes-json-schema"


def targets():
    for version_dir in sorted(schema_root().glob("v*-local")):
        for strict in (False, True):
            d = version_dir if not strict else version_dir.with_name(version_dir.name + "-strict")
            if d.is_dir():
                for kind in CRDS:
                    yield d / f"{kind}-monitoring-v1.json", strict


def installed() -> bool:
    files = list(targets())
    return bool(files) and all(
        p.exists() and json.loads(p.read_text()).get("x-egressor-source") == SOURCE
        for p, _ in files
    )


def crate_bytes() -> bytes:
    """The crate archive: cargo's cache if it has it, else the registry's download API."""
    cached = sorted(pathlib.Path.home().glob(f".cargo/registry/cache/*/{CRATE}-{VERSION}.crate"))
    if cached:
        data = cached[0].read_bytes()
    else:
        with urllib.request.urlopen("https://index.crates.io/config.json", timeout=30) as r:
            dl = json.load(r)["dl"]
        url = f"{dl}/{CRATE}/{VERSION}/download"
        if "{crate}" in dl:
            url = dl.replace("{crate}", CRATE).replace("{version}", VERSION)
        with urllib.request.urlopen(url, timeout=60) as r:
            data = r.read()
    digest = hashlib.sha256(data).hexdigest()
    if digest != SHA256:
        sys.exit(f"crd-schemas: {CRATE} {VERSION}: sha256 {digest}, expected {SHA256}")
    return data


def openapi_to_jsonschema(node, strict: bool):
    if isinstance(node, list):
        return [openapi_to_jsonschema(n, strict) for n in node]
    if not isinstance(node, dict):
        return node
    out = {k: openapi_to_jsonschema(v, strict) for k, v in node.items()}
    if out.pop("nullable", False) and isinstance(out.get("type"), str):
        out["type"] = [out["type"], "null"]
    if strict and "properties" in out and "additionalProperties" not in out:
        out["additionalProperties"] = False
    return out


def convert(crd: dict, strict: bool) -> dict:
    group = crd["spec"]["group"]
    kind = crd["spec"]["names"]["kind"]
    (version,) = [v for v in crd["spec"]["versions"] if v["name"] == "v1"]
    schema = openapi_to_jsonschema(copy.deepcopy(version["schema"]["openAPIV3Schema"]), strict)
    props = schema["properties"]
    props["apiVersion"] = {"type": "string", "enum": [f"{group}/v1"]}
    props["kind"] = {"type": "string", "enum": [kind]}
    props["metadata"] = {"$ref": "/api/_definitions.json#/$defs/io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"}
    schema["required"] = sorted(set(schema.get("required", [])) | {"apiVersion", "kind", "metadata"})
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["$id"] = f"https://kubernetes.io/api/{kind.lower()}/{group}/v1"
    schema["x-kubernetes-group-version-kind"] = [{"group": group, "kind": kind, "version": "v1"}]
    schema["x-egressor-source"] = SOURCE
    schema["x-egressor-operator-version"] = crd["metadata"]["annotations"]["operator.prometheus.io/version"]
    return schema


def main() -> int:
    if "--check" in sys.argv[1:]:
        return 0 if installed() else 1
    if installed():
        return 0
    with tarfile.open(fileobj=io.BytesIO(crate_bytes()), mode="r:gz") as tar:
        crds = {
            kind: yaml.safe_load(tar.extractfile(f"{CRATE}-{VERSION}/{path}").read())
            for kind, path in CRDS.items()
        }
    for path, strict in targets():
        kind = path.name.split("-")[0]
        path.write_text(json.dumps(convert(crds[kind], strict), indent=1, sort_keys=True))
    print(f"crd-schemas: ServiceMonitor and PrometheusRule schemas ({CRATE} {VERSION}) installed "
          f"into {schema_root()}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
