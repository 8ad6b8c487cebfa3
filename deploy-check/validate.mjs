// Validates every Istio resource and the ServiceMonitor against the kubernetes-models schemas.
// Usage: node validate.mjs FILE.yaml... ; exits 1 naming the file and the problem.
import { readFileSync } from "node:fs";
import { parseAllDocuments } from "yaml";
import * as networking from "@kubernetes-models/istio/networking.istio.io/v1";
import * as security from "@kubernetes-models/istio/security.istio.io/v1";
import * as monitoring from "@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1";

const kinds = {
  "networking.istio.io/v1": networking,
  "security.istio.io/v1": security,
  "monitoring.coreos.com/v1": monitoring,
};

let failed = 0;
let checked = 0;
for (const file of process.argv.slice(2)) {
  for (const doc of parseAllDocuments(readFileSync(file, "utf8"))) {
    const obj = doc.toJS();
    if (!obj || !kinds[obj.apiVersion]) continue;
    const Cls = kinds[obj.apiVersion][obj.kind];
    if (!Cls) {
      console.error(`${file}: no model for ${obj.apiVersion} ${obj.kind}`);
      failed++;
      continue;
    }
    try {
      new Cls(obj).validate();
      checked++;
      console.log(`ok   ${file}: ${obj.kind}/${obj.metadata.name}`);
    } catch (e) {
      failed++;
      console.error(`FAIL ${file}: ${obj.kind}/${obj.metadata?.name}: ${e.message}`);
    }
  }
}
if (failed || !checked) {
  console.error(`${failed} invalid, ${checked} valid`);
  process.exit(1);
}
