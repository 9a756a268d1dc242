// The /demo page across reloads, in headless Chromium (issue 14):
//
// usage: node demo-reload-test.mjs <baseUrl> <screenshotDir>
//
//  1. the header names the model answering;
//  2. an answer is Markdown rendered safely: the model's echo of a message holding
//     `**bold**`, `` `code` `` and an <img onerror> shows <strong> and <code>, and no
//     element the text named (no <img>, the handler never ran); the user's bubble shows
//     the text as typed;
//  3. a reload mid-answer: the rebuilt bubble starts at the answer's first word (never
//     only its tail), every text shown is a prefix of the final one, which equals the
//     stored answer, shown once;
//  4. a stopped answer, reloaded, is still marked stopped;
//  5. "New chat" asks first; the old chat is offered under "Previous chats" and
//     choosing it shows its history again -> screenshot demo-previous.png.
// Prints `RESULT {"ok":true,...}`; on failure `FAIL [step] reason` on stderr, exit 1.
import fs from 'node:fs';
import path from 'node:path';
import { STEP_MS, args, fail, history, openPage, run, send, step, waitConnected } from './harness.mjs';

const [base, shotDir] = args('demo-reload-test.mjs', ['baseUrl', 'screenshotDir']);

const wait = (page, fn, arg) => page.waitForFunction(fn, arg, { timeout: STEP_MS, polling: 20 });
const assistants = (page) => page.$$eval('#messages li.msg.assistant', (els) => els.map((e) => ({
  text: e.querySelector('.text').textContent, state: e.dataset.state, note: e.querySelector('.note').textContent,
})));

// In the page: samples the newest assistant bubble's text every 20 ms until it is done.
async function samplesUntilDone({ count, timeoutMs }) {
  const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
  const t0 = performance.now();
  const samples = [];
  for (;;) {
    const all = document.querySelectorAll('#messages li.msg.assistant');
    const b = all.length >= count ? all[count - 1] : null;
    if (b) {
      const text = b.querySelector('.text').textContent;
      if (text && samples[samples.length - 1] !== text) samples.push(text);
      if (b.dataset.state !== 'streaming') return { samples, final: text, state: b.dataset.state };
    }
    if (performance.now() - t0 > timeoutMs) return { timeout: true, samples };
    await sleep(20);
  }
}

run(6, async (browser) => {
  fs.mkdirSync(shotDir, { recursive: true });
  const { page, errors: pageErrors } = await openPage(browser, { viewport: { width: 390, height: 844 } });
  await page.goto(`${base}/demo`);
  step('model');
  await waitConnected(page, 'first load');
  await wait(page, () => document.getElementById('model').textContent.length > 0);
  const model = await page.textContent('#model');
  if (!/model /.test(model)) fail(`the header does not name the model: ${JSON.stringify(model)}`);
  const sessionId = await page.evaluate(() => window.chatDemo.state.sessionId);

  step('markdown');
  const risky = 'show **bold** and `code` <img src=x onerror="window.pwned=1"> <b>raw</b>';
  await send(page, risky);
  await wait(page, () => [...document.querySelectorAll('#messages li.msg.assistant')].some((b) => b.dataset.state === 'complete'));
  const md = await page.evaluate(() => {
    const b = document.querySelector('#messages li.msg.assistant .text');
    return {
      strong: b.querySelector('strong')?.textContent ?? null,
      code: b.querySelector('code')?.textContent ?? null,
      imgs: document.querySelectorAll('#messages img').length,
      bold: document.querySelectorAll('#messages b').length,
      pwned: window.pwned === 1,
      user: document.querySelector('#messages li.msg.user .text').textContent,
    };
  });
  if (md.strong !== 'bold' || md.code !== 'code') fail(`Markdown not rendered: ${JSON.stringify(md)}`);
  if (md.imgs || md.bold || md.pwned) fail(`HTML from the text reached the page: ${JSON.stringify(md)}`);
  if (md.user !== risky) fail(`the user's text was changed: ${JSON.stringify(md.user)}`);

  step('reload mid-answer');
  await send(page, 'second question');
  await wait(page, () => {
    const all = document.querySelectorAll('#messages li.msg.assistant');
    const b = all[1];
    return b && b.dataset.state === 'streaming' && b.querySelector('.text').textContent.length > 20;
  });
  const before = (await assistants(page))[1].text;
  // After a fresh attach the page reads the history again while the replay of the
  // answer in progress arrives; where that read lands among the replayed events was
  // left to timing. Here it lands after the replay's first event every time: the
  // server's messages after `connected` and that event are held until the page has
  // had the re-read's answer (a position moved past the replay by the re-read would
  // drop the rest of it, and the bubble would be rebuilt from the answer's tail).
  let release;
  const held = new Promise((resolve) => { release = resolve; });
  await page.routeWebSocket(/\/ws\//, (ws) => {
    const server = ws.connectToServer();
    let seen = 0;
    server.onMessage(async (message) => {
      seen += 1;
      if (seen > 2) await held;
      ws.send(message);
    });
  });
  let historyReads = 0;
  const reread = new Promise((resolve) => {
    const onResponse = (response) => {
      if (!new URL(response.url()).pathname.endsWith('/messages')) return;
      historyReads += 1;
      if (historyReads === 2) { page.off('response', onResponse); resolve(response); }
    };
    page.on('response', onResponse);
  });
  await page.reload();
  await waitConnected(page, 'after the reload mid-answer');
  await (await reread).finished();
  await page.evaluate(() => new Promise((resolve) => setTimeout(resolve, 100)));
  release();
  const rebuilt = await page.evaluate(samplesUntilDone, { count: 2, timeoutMs: STEP_MS });
  if (rebuilt.timeout) fail(`the answer did not complete after the reload: ${JSON.stringify(rebuilt)}`);
  const stored = (await history(base, sessionId)).filter((m) => m.role === 'assistant').map((m) => m.content);
  if (rebuilt.final !== stored[1]) fail(`shown ${JSON.stringify(rebuilt.final)} but stored ${JSON.stringify(stored[1])}`);
  const streamedAfterReload = rebuilt.samples.length > 1;
  if (streamedAfterReload && !rebuilt.samples[0].startsWith('Reply 2 to')) {
    fail(`after the reload the answer was rebuilt from ${JSON.stringify(rebuilt.samples[0])}, not its start`);
  }
  for (const s of rebuilt.samples) if (!rebuilt.final.startsWith(s)) fail(`not a prefix: ${JSON.stringify(s)}`);
  if (!rebuilt.final.startsWith(before)) fail('the text before the reload is not a prefix of the answer');
  if ((await assistants(page)).length !== 2) fail(`answers shown: ${JSON.stringify(await assistants(page))}`);

  step('stopped, reloaded');
  await send(page, 'third question');
  await wait(page, () => {
    const b = document.querySelectorAll('#messages li.msg.assistant')[2];
    return b && b.querySelector('.text').textContent.length > 10;
  });
  await page.click('#stop');
  await wait(page, () => document.querySelectorAll('#messages li.msg.assistant')[2]?.dataset.state === 'stopped');
  await page.reload();
  await waitConnected(page, 'after reloading the stopped answer');
  await wait(page, () => document.querySelectorAll('#messages li.msg.assistant').length === 3);
  const third = (await assistants(page))[2];
  if (third.state !== 'stopped' || third.note !== '(stopped)') fail(`after a reload: ${JSON.stringify(third)}`);

  step('new chat');
  const dialogs = [];
  page.once('dialog', (d) => { dialogs.push(d.message()); void d.accept(); });
  await page.click('#new-chat');
  await wait(page, (old) => window.chatDemo.state.sessionId && window.chatDemo.state.sessionId !== old
    && window.chatDemo.state.status === 'connected', sessionId);
  if (dialogs.length !== 1) fail('"New chat" did not ask first');
  if (await page.$('#messages li.msg.user')) fail('the new chat is not empty');
  const offered = await page.$$eval('#previous option', (os) => os.map((o) => o.value));
  if (!offered.includes(sessionId)) fail(`the old chat is not offered: ${JSON.stringify(offered)}`);
  await page.selectOption('#previous', sessionId);
  await wait(page, (old) => window.chatDemo.state.sessionId === old
    && document.querySelectorAll('#messages li.msg.user').length === 3, sessionId);
  await page.screenshot({ path: path.join(shotDir, 'demo-previous.png') });
  if (pageErrors.length) fail(`page errors: ${pageErrors.join('; ')}`);
  console.log(`RESULT ${JSON.stringify({ ok: true, session_id: sessionId, model, streamed_after_reload: streamedAfterReload,
    samples_after_reload: rebuilt.samples.length, first_after_reload: rebuilt.samples[0], dialog: dialogs[0] })}`);
});
