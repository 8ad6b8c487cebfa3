#!/usr/bin/env python3
"""Renders monitoring/prometheus-adapter.yaml's rules the way prometheus-adapter does (its Go template variables
filled with the values it would use for the HPA's query) into a Prometheus rule file, so `promtool check rules`
checks the PromQL; and checks that every rule serves a metric the HPA asks for under the same name.

Usage: check-adapter-rules.py ADAPTER_VALUES.yaml OUT_RULES.yml"""

import re
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parent.parent


def hpa_pods_metrics() -> set[str]:
    hpa = yaml.safe_load((REPO / "k8s" / "hpa.yaml").read_text())
    return {m["pods"]["metric"]["name"] for m in hpa["spec"]["metrics"] if m["type"] == "Pods"}


def render(rule: dict) -> tuple[str, str]:
    series = re.match(r"^\s*([a-zA-Z_:][a-zA-Z0-9_:]*)", rule["seriesQuery"]).group(1)
    exposed = re.sub(rule["name"]["matches"], rule["name"].get("as", "") or r"\g<0>", series)
    labels = rule["resources"]["overrides"]
    assert set(labels) == {"namespace", "pod"}, f"{series}: a pods metric needs namespace and pod overrides"
    query = (rule["metricsQuery"]
             .replace("<<.Series>>", series)
             .replace("<<.LabelMatchers>>", 'namespace="nexus-mcp",pod=~"nexus-mcp-.*"')
             .replace("<<.GroupBy>>", "pod"))
    assert "<<" not in query, f"{series}: unknown template variable in {query}"
    return exposed, query


def main() -> None:
    values, out = Path(sys.argv[1]), Path(sys.argv[2])
    rules = yaml.safe_load(values.read_text())["rules"]["custom"]
    rendered = dict(render(r) for r in rules)
    wanted = hpa_pods_metrics()
    missing = wanted - set(rendered)
    if missing:
        sys.exit(f"the HPA asks for pods metrics no adapter rule serves: {sorted(missing)}")
    group = [{"record": f"adapter_check:{name}", "expr": query} for name, query in rendered.items()]
    out.write_text(yaml.safe_dump({"groups": [{"name": "prometheus-adapter", "rules": group}]}))
    print(f"adapter rules serve {sorted(rendered)}; the HPA asks for {sorted(wanted)}")


if __name__ == "__main__":
    main()
