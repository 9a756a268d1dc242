#!/usr/bin/env node
// Validates an AsyncAPI document (JSON on stdin) with the AsyncAPI project's parser:
// exits 1 and prints the diagnostics when it has errors; otherwise prints the version
// and, one per line, each operation as `<action> <channel address> <message names>`.
//
//   curl -s http://127.0.0.1:8002/asyncapi.json | node validate.js
const { Parser, DiagnosticSeverity } = require('@asyncapi/parser');

async function main() {
  const chunks = [];
  for await (const chunk of process.stdin) chunks.push(chunk);
  const parser = new Parser();
  const { document, diagnostics } = await parser.parse(Buffer.concat(chunks).toString('utf8'));
  const errors = diagnostics.filter((d) => d.severity === DiagnosticSeverity.Error);
  if (!document || errors.length > 0) {
    console.error(JSON.stringify(errors.length ? errors : diagnostics, null, 2));
    process.exit(1);
  }
  console.log(document.version());
  for (const operation of document.operations()) {
    const address = operation.channels().all().map((c) => c.address()).join(',');
    const messages = operation.messages().all().map((m) => m.name() || m.id()).join(',');
    console.log(`${operation.action()} ${address} ${messages}`);
  }
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
