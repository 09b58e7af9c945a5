"""The client-model table apiserver/schema.py reads, generated from the official client.

The Kubernetes types the apiserver serves come from the `kubernetes` client's generated
models, but importing `kubernetes.client.models` costs the apiserver about 30 MB of
resident memory and half a second of every start (pydantic models of every API group).
So what schema.py uses of them is written once to `schema_models.json` beside this
module: for each model reachable from a served kind (or from the API machinery models
the OpenAPI documents name), its description, its fields as `[JSON key, client type,
description]` in the client's order, and its required JSON keys.

After upgrading the client, regenerate with `python -m apiserver.schema_table`; a unit
test fails while the file and the installed client disagree.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from apiserver.schema import API_MODELS, TABLE_PATH, model_for, referenced_model
from minikube_py.api.resources import BY_KIND

ModelEntry = dict[str, Any]  # {"description": str, "fields": [[key, type, doc]], "required": [key]}


def root_models() -> list[str]:
    """Every served kind's model and list model, and the API machinery models."""
    roots = [m for kind in BY_KIND for m in (model_for(kind), f"{model_for(kind)}List")]
    return [*roots, *API_MODELS]


def build_table() -> dict[str, ModelEntry]:
    """The table, read from the installed `kubernetes` client (imported only here)."""
    from kubernetes.client import models

    table: dict[str, ModelEntry] = {}
    pending = root_models()
    while pending:
        name = pending.pop()
        if name in table:
            continue
        cls = getattr(models, name)
        declared = getattr(cls, "model_fields", {})
        doc = cls.__doc__ or ""
        table[name] = {
            "description": " ".join(doc.split("Attributes:")[0].split()),
            "fields": [
                [
                    cls.attribute_map[attr],
                    type_str,
                    (declared[attr].description or "") if attr in declared else "",
                ]
                for attr, type_str in cls.openapi_types.items()
            ],
            "required": [
                cls.attribute_map[attr]
                for attr, info in declared.items()
                if attr in cls.attribute_map and info.is_required()
            ],
        }
        pending += [m for _, t, _ in table[name]["fields"] if (m := referenced_model(t))]
    return dict(sorted(table.items()))


def render_table(table: dict[str, ModelEntry]) -> str:
    """The file's text: one model per line, so an upgrade's diff reads model by model."""
    lines = [f"{json.dumps(name)}: {json.dumps(entry)}" for name, entry in table.items()]
    return "{\n" + ",\n".join(lines) + "\n}\n"


def main(path: Path = TABLE_PATH) -> None:
    path.write_text(render_table(build_table()))
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
