#!/usr/bin/env node
// Validates the chart's custom resources against their published models: the KEDA
// ScaledObject (@kubernetes-models/keda) and the Prometheus Operator ServiceMonitor
// (@kubernetes-models/prometheus-operator). Two passes, both from those packages:
//
// 1. the models' JSON-schema validators (types, required fields, enums), what the API
//    server checks against the CRD's openAPIV3Schema;
// 2. strict: the models' TypeScript types, with each object as a typed literal checked
//    by the TypeScript compiler, whose excess-property check refuses a field the CRD
//    does not have (say `minReplicas` for `minReplicaCount`). The schemas allow unknown
//    fields (the API server prunes them, or refuses them with fieldValidation=Strict),
//    so pass 1 alone would let a misspelt field through.
//
//   node validate-crds.mjs FILE.yaml ...
// Exits 1 naming each invalid file and what is wrong with it.
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';
import { parseAllDocuments } from 'yaml';
import { ScaledObject } from '@kubernetes-models/keda/keda.sh/v1alpha1';
import { ServiceMonitor } from '@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1';

const models = {
  'keda.sh/v1alpha1 ScaledObject': {
    Model: ScaledObject,
    type: 'IScaledObject',
    from: '@kubernetes-models/keda/keda.sh/v1alpha1/ScaledObject',
  },
  'monitoring.coreos.com/v1 ServiceMonitor': {
    Model: ServiceMonitor,
    type: 'IServiceMonitor',
    from: '@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/ServiceMonitor',
  },
};

const objects = [];
let invalid = 0;
for (const file of process.argv.slice(2)) {
  for (const doc of parseAllDocuments(readFileSync(file, 'utf8'))) {
    const obj = doc.toJSON();
    if (!obj) continue;
    const model = models[`${obj.apiVersion} ${obj.kind}`];
    if (!model) {
      console.error(`${file}: no model for ${obj.apiVersion} ${obj.kind}`);
      process.exit(1);
    }
    try {
      new model.Model(obj).validate();
    } catch (err) {
      console.error(`${file}: invalid ${obj.kind}: ${err.message}`);
      invalid += 1;
    }
    objects.push({ file, obj, model });
  }
}

// Pass 2: one virtual module beside this script (so the packages resolve from its
// node_modules), one typed constant per line.
const here = dirname(fileURLToPath(import.meta.url));
const source = join(here, '__validate_crds__.ts');
const imports = [...new Set(objects.map((o) => o.model))]
  .map((m) => `import type { ${m.type} } from ${JSON.stringify(m.from)};`);
const lines = [...imports, ...objects.map((o, n) => `export const o${n}: ${o.model.type} = ${JSON.stringify(o.obj)};`)];
const options = {
  noEmit: true,
  strict: true,
  skipLibCheck: true,
  types: [],
  lib: ['lib.es2020.d.ts'],
  target: ts.ScriptTarget.ES2020,
  module: ts.ModuleKind.NodeNext,
  moduleResolution: ts.ModuleResolutionKind.NodeNext,
};
const host = ts.createCompilerHost(options);
const readFile = host.readFile.bind(host);
const getSourceFile = host.getSourceFile.bind(host);
host.readFile = (path) => (path === source ? lines.join('\n') : readFile(path));
host.fileExists = ((exists) => (path) => path === source || exists(path))(host.fileExists.bind(host));
host.getSourceFile = (path, version, ...rest) => (path === source
  ? ts.createSourceFile(path, lines.join('\n'), version)
  : getSourceFile(path, version, ...rest));
for (const diagnostic of ts.getPreEmitDiagnostics(ts.createProgram([source], options, host))) {
  const message = ts.flattenDiagnosticMessageText(diagnostic.messageText, ' ');
  if (diagnostic.file?.fileName !== source) {
    console.error(`validate-crds: the models' types did not load: ${message}`);
    process.exit(1);
  }
  const line = diagnostic.file.getLineAndCharacterOfPosition(diagnostic.start).line - imports.length;
  const { file, obj } = objects[line];
  console.error(`${file}: ${obj.kind} not strictly valid: ${message}`);
  invalid += 1;
}
if (invalid > 0) process.exit(1);
console.error(`validate-crds: ${objects.length} objects valid (schemas and strict field names)`);
