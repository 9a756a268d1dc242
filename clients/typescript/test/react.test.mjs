// usePipecatChat in headless Chromium (Debian's `chromium`, driven by playwright-core)
// against a real gateway and worker: a reload mid-answer shows the answer whole (from
// its first word, never only its tail), once; a stopped answer is still shown as
// stopped after a reload.
import assert from 'node:assert/strict';
import http from 'node:http';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';
import { chromium } from 'playwright-core';
import { Cluster, freePort, mockReply } from './harness.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const TOKENS = 30;
const CHROMIUM = process.env.CHROMIUM_PATH || '/usr/bin/chromium';
let cluster;
let server;
let browser;
let pageUrl;

before(async () => {
  cluster = await Cluster.start({ gateways: 1, workers: 1, tokens: TOKENS, tokenDelayMs: 60 });
  const bundle = await build({
    entryPoints: [path.join(here, 'fixtures/react-app.jsx')],
    bundle: true,
    write: false,
    format: 'iife',
    jsx: 'automatic',
    define: { 'process.env.NODE_ENV': '"production"' },
    logLevel: 'silent',
  });
  const script = bundle.outputFiles[0].text;
  const html = `<!doctype html><meta charset="utf-8"><div id="root"></div>
<script>window.GATEWAY = ${JSON.stringify(cluster.gateways[0].url)};</script><script src="/app.js"></script>`;
  server = http.createServer((req, res) => {
    if (req.url === '/app.js') res.writeHead(200, { 'content-type': 'text/javascript' }).end(script);
    else res.writeHead(200, { 'content-type': 'text/html' }).end(html);
  });
  const port = await freePort();
  await new Promise((resolve) => server.listen(port, '127.0.0.1', resolve));
  pageUrl = `http://127.0.0.1:${port}/`;
  browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox'] });
});

after(async () => {
  await browser?.close();
  server?.close();
  await cluster?.stop();
});

const state = (page) => page.evaluate(() => ({
  messages: window.chat.messages.map((m) => ({ role: m.role, content: m.content, cancelled: !!m.cancelled })),
  currentChunk: window.chat.currentChunk,
  isTyping: window.chat.isTyping,
  sessionId: window.chat.sessionId,
}));

const waitFor = (page, fn, arg) => page.waitForFunction(fn, arg, { timeout: 30000, polling: 20 });

test('a reload mid-answer shows the answer whole, once; a stopped answer stays stopped after a reload', async () => {
  const page = await browser.newPage();
  const errors = [];
  page.on('pageerror', (error) => errors.push(String(error)));
  await page.goto(pageUrl);
  await waitFor(page, () => window.chat?.isConnected);
  await page.evaluate(() => window.chat.sendMessage('first'));
  await waitFor(page, () => window.chat.messages.length === 2);
  await page.evaluate(() => window.chat.sendMessage('second'));
  await waitFor(page, () => window.chat.currentChunk.length > 40);
  const before = await state(page);

  await page.reload();
  await waitFor(page, () => window.chat?.isConnected);
  await waitFor(page, () => window.chat.messages.length === 4 && window.chat.currentChunk === '');
  const after = await state(page);
  const shown = await page.evaluate(() => window.shown);
  const first = mockReply(1, 'first', 0, TOKENS);
  const second = mockReply(2, 'second', 1, TOKENS);
  assert.equal(after.sessionId, before.sessionId, 'the same session after the reload');
  assert.deepEqual(after.messages.map((m) => m.content), ['first', first, 'second', second]);
  assert.ok(shown.length >= 2, `it streamed on after the reload: ${shown.length}`);
  assert.ok(shown[0].startsWith('Reply 2 to'), `rebuilt from its first word, not a tail: ${JSON.stringify(shown[0])}`);
  for (const text of shown) assert.ok(second.startsWith(text), `every text shown is a prefix: ${JSON.stringify(text)}`);

  // Stopped, then reloaded: still shown as stopped, from the history.
  await page.evaluate(() => window.chat.sendMessage('third'));
  await waitFor(page, () => window.chat.currentChunk.length > 10);
  await page.evaluate(() => window.chat.cancel());
  await waitFor(page, () => window.chat.messages.length === 6);
  assert.equal((await state(page)).messages[5].cancelled, true);
  await page.reload();
  await waitFor(page, () => window.chat?.isConnected && window.chat.messages.length === 6);
  const stopped = (await state(page)).messages[5];
  assert.equal(stopped.cancelled, true, 'stopped after the reload too');
  assert.ok(mockReply(3, 'third', 2, TOKENS).startsWith(stopped.content));
  assert.match(await page.textContent('.messages'), /\(stopped\)/);
  assert.deepEqual(errors, []);
  await page.close();
});
