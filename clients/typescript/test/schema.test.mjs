// The client's event types against the protocol's JSON Schema, as a gateway serves it
// (/asyncapi.json): every event type the gateway sends is one the client knows, every
// field the client reads exists there with the same JSON type (and is always sent when
// the client counts on it), every field the schema always sends is declared, and
// every enum value the client knows is one the schema allows.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { PROTOCOL_FIELDS } from '../dist/index.js';
import { Cluster } from './harness.mjs';

let cluster;
let doc;

before(async () => {
  cluster = await Cluster.start({ gateways: 1, workers: 0 });
  doc = await (await fetch(`${cluster.gateways[0].url}/asyncapi.json`)).json();
});
after(async () => {
  await cluster?.stop();
});

function resolve(schema) {
  let current = schema;
  while (current && current.$ref) {
    const parts = current.$ref.replace(/^#\//, '').split('/');
    current = parts.reduce((node, key) => node?.[key], doc);
  }
  return current;
}

/** An object schema's properties and required names, through `allOf`. */
function flatten(schema) {
  const s = resolve(schema);
  const parts = s.allOf ? s.allOf.map(flatten) : [];
  const properties = Object.assign({}, ...parts.map((p) => p.properties), s.properties ?? {});
  const required = new Set([...parts.flatMap((p) => [...p.required]), ...(s.required ?? [])]);
  return { properties, required };
}

/** The JSON types and enum values a property schema allows (null aside). */
function shape(schema) {
  const s = resolve(schema);
  const alternatives = s.oneOf ?? s.anyOf;
  if (alternatives) {
    return alternatives.map(shape).reduce((a, b) => ({ types: [...a.types, ...b.types], values: [...a.values, ...b.values] }), { types: [], values: [] });
  }
  const types = [s.type ?? []].flat().filter((t) => t !== 'null');
  return { types, values: s.enum ?? [] };
}

test('the event types the client declares are those of the served schema', () => {
  const messages = doc.components.messages;
  const streamTypes = Object.keys(messages).filter((k) => k.startsWith('stream_')).map((k) => k.slice(7)).sort();
  assert.deepEqual(streamTypes, Object.keys(PROTOCOL_FIELDS).sort(), 'every stream event type is known');
  for (const type of streamTypes) {
    const { properties, required } = flatten(messages[`stream_${type}`].payload);
    const declared = PROTOCOL_FIELDS[type];
    for (const [field, spec] of Object.entries(declared)) {
      assert.ok(properties[field], `${type}.${field} is in the schema`);
      const { types, values } = shape(properties[field]);
      assert.ok(types.includes(spec.type), `${type}.${field}: ${spec.type} in ${types}`);
      if (spec.required) assert.ok(required.has(field), `${type}.${field} is always sent`);
      for (const value of spec.values ?? []) assert.ok(values.includes(value), `${type}.${field}: ${value} is allowed`);
    }
    for (const field of required) {
      if (field === 'type') continue;
      assert.ok(declared[field], `${type}.${field}, always sent, is declared by the client`);
    }
  }
});
