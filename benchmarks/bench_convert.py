"""How long UI-format -> API conversion and form building take, against `json.loads` of the file.

For each fixture UI workflow (as the ComfyUI editor saves them) this measures `json.loads` of the file (the
baseline), `convert_ui_workflow` of the parsed document with the fixture node catalog, and `build_form` on the
converted graph; all three on the same document in the same run.

Usage: .venv/bin/python benchmarks/bench_convert.py [--repeat N] [--fixtures DIR]
Prints medians and writes benchmarks/results/convert.json.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from _common import ROOT, median_ms, write_results

from comfydesk.core.convert import convert_ui_workflow
from comfydesk.core.errors import ComfyDeskError
from comfydesk.core.nodes import parse_object_info
from comfydesk.core.templates import build_form
from comfydesk.core.workflow import Workflow


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeat", type=int, default=200)
    ap.add_argument("--fixtures", type=Path, default=ROOT.parent / "shared" / "fixtures" / "comfyui")
    args = ap.parse_args()
    catalog = parse_object_info(json.loads((args.fixtures / "object_info.json").read_bytes()))
    files = sorted((args.fixtures / "workflows" / "ui").glob("*.json"))
    results: dict[str, dict[str, float | int]] = {}
    skipped: dict[str, str] = {}
    for path in files:
        raw = path.read_bytes()
        doc = json.loads(raw)
        # Warm up once; a file that needs node types the captured catalog lacks is reported and skipped.
        try:
            converted = convert_ui_workflow(doc, catalog, source=path.name)
        except ComfyDeskError as exc:
            skipped[path.name] = str(exc)
            print(f"{path.name}: skipped, it does not convert with the captured catalog: {exc}")
            continue
        workflow = Workflow(name=path.stem, graph=converted.graph, source=path.name, format="ui")
        form = build_form(workflow, catalog)
        loads_ms = median_ms(lambda raw=raw: json.loads(raw), args.repeat)
        convert_ms = median_ms(
            lambda doc=doc, src=path.name: convert_ui_workflow(doc, catalog, source=src), args.repeat
        )
        form_ms = median_ms(lambda wf=workflow: build_form(wf, catalog), args.repeat)
        ui_nodes = len(doc.get("nodes") or ())
        fields = len(form.fields())
        results[path.name] = {
            "bytes": len(raw),
            "ui_top_level_nodes": ui_nodes,
            "api_nodes": len(converted.graph),
            "form_fields": fields,
            "json_loads_ms": round(loads_ms, 3),
            "convert_ms": round(convert_ms, 3),
            "convert_vs_loads": round(convert_ms / loads_ms, 2),
            "build_form_ms": round(form_ms, 3),
            "build_form_vs_loads": round(form_ms / loads_ms, 2),
        }
        print(
            f"{path.name}: {len(raw):,} bytes, {ui_nodes} top-level UI nodes -> "
            f"{len(converted.graph)} API nodes, {fields} fields | json.loads {loads_ms:.3f} ms | "
            f"convert {convert_ms:.3f} ms "
            f"({convert_ms / loads_ms:.1f}x loads) | build_form {form_ms:.3f} ms "
            f"({form_ms / loads_ms:.1f}x loads)  (medians of {args.repeat})"
        )
    write_results("convert", {"repeat": args.repeat, "files": results, "skipped": skipped})


if __name__ == "__main__":
    main()
