#!/usr/bin/env node
// Validates the chart's custom resources against their published models: the KEDA
// ScaledObject (@kubernetes-models/keda) and the Prometheus Operator ServiceMonitor
// (@kubernetes-models/prometheus-operator). Exits 1 naming the first invalid file.
//
//   node validate-crds.mjs FILE.yaml ...
import { readFileSync } from 'node:fs';
import { parseAllDocuments } from 'yaml';
import { ScaledObject } from '@kubernetes-models/keda/keda.sh/v1alpha1';
import { ServiceMonitor } from '@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1';

const models = {
  'keda.sh/v1alpha1 ScaledObject': ScaledObject,
  'monitoring.coreos.com/v1 ServiceMonitor': ServiceMonitor,
};
let count = 0;
for (const file of process.argv.slice(2)) {
  for (const doc of parseAllDocuments(readFileSync(file, 'utf8'))) {
    const obj = doc.toJSON();
    if (!obj) continue;
    const Model = models[`${obj.apiVersion} ${obj.kind}`];
    if (!Model) {
      console.error(`${file}: no model for ${obj.apiVersion} ${obj.kind}`);
      process.exit(1);
    }
    try {
      new Model(obj).validate();
    } catch (err) {
      console.error(`${file}: invalid ${obj.kind}: ${err.message}`);
      process.exit(1);
    }
    count += 1;
  }
}
console.error(`validate-crds: ${count} objects valid`);
