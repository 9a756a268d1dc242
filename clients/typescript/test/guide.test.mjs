// The guide's usage example, unchanged but for its import, against a real gateway; and
// the guide's `require` shape of the package (the class itself).
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { Cluster, mockReply } from './harness.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const TOKENS = 20;
let cluster;

before(async () => {
  cluster = await Cluster.start({ gateways: 1, workers: 1, tokens: TOKENS, tokenDelayMs: 10 });
});
after(async () => {
  await cluster?.stop();
});

test("require('@chat-gateway/client') is the class, as the guide's module.exports was", () => {
  const require = createRequire(import.meta.url);
  const PipecatChatClient = require('@chat-gateway/client');
  assert.equal(typeof PipecatChatClient, 'function');
  assert.equal(PipecatChatClient.name, 'PipecatChatClient');
  assert.equal(PipecatChatClient.PipecatChatClient, PipecatChatClient);
  const client = new PipecatChatClient('http://127.0.0.1:1');
  for (const method of ['createSession', 'connect', 'sendMessage', 'getSessionInfo', 'disconnect', 'on', 'emit']) {
    assert.equal(typeof client[method], 'function', method);
  }
});

test("the guide's usage example runs unchanged but for the import", async () => {
  const example = fs.readFileSync(path.join(here, 'fixtures/guide-usage-example.cjs'), 'utf8');
  // The deployment's address, as the guide tells its reader to fill in.
  const script = path.join(here, 'fixtures/.guide-run.cjs');
  fs.writeFileSync(script, example.replace('http://your-azure-vm:8002', cluster.gateways[0].url));
  try {
    const { code, stdout, stderr } = await new Promise((resolve) => {
      execFile(process.execPath, ['--require', path.join(here, 'fixtures/scale-timers.cjs'), script], {
        env: { ...process.env, GUIDE_TIME_SCALE: '0.2' },
        timeout: 30000,
      }, (error, out, err) => resolve({ code: error ? error.code ?? 1 : 0, stdout: out, stderr: err }));
    });
    assert.equal(code, 0, `exit code\n${stdout}\n${stderr}`);
    assert.match(stdout, /Connected to chat service/);
    assert.match(stdout, /AI is typing/);
    const completes = stdout.split('\n').filter((l) => l.includes('Complete message:'));
    assert.deepEqual(completes.map((l) => l.slice(l.indexOf('Complete message:') + 18)), [
      mockReply(1, 'What are your blood test hours?', 0, TOKENS),
      mockReply(2, 'What about Saturday?', 1, TOKENS),
    ], stdout);
    assert.match(stdout, /Disconnected from chat service/);
    assert.doesNotMatch(stdout + stderr, /Error:/);
  } finally {
    fs.rmSync(script, { force: true });
  }
});
