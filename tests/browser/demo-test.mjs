// Drives the gateway's /demo page in headless Chromium, as a person on a phone would.
//
// usage: node demo-test.mjs <baseUrl> <screenshotDir>
//
// Steps (any unmet one prints `FAIL [step] reason` on stderr and exits 1):
//  1. open <baseUrl>/demo at 390x844 and wait for the socket to be connected;
//  2. send "hello from the browser"; the user bubble appears; the assistant bubble grows
//     through at least 2 distinct intermediate texts (sampled every 20 ms) and completes
//     -> screenshot demo-chat.png;
//  3. send a second message; after its first chunk drop the socket
//     (window.chatDemo.dropConnection()); the page reconnects with last_seq and the
//     final bubble equals both the `complete` frame and the stored history, and every
//     text shown on the way was a prefix of it (no duplicated segment);
//  4. reload: both exchanges are rendered from history; no horizontal scroll at 390
//     and 360 px -> screenshot demo-resumed.png.
// On success prints one line: RESULT {"ok":true, ...figures}.
//
// The server must stream slowly enough to sample (a per-token delay of ~50 ms or more).
import fs from 'node:fs';
import path from 'node:path';
import { STEP_MS, args, fail, history, openPage, run, send, step, waitConnected } from './harness.mjs';

const [base, shotDir] = args('demo-test.mjs', ['baseUrl', 'screenshotDir']);
const FIRST = 'hello from the browser';
const SECOND = 'please tell me a bit more';

// Runs in the page: samples the newest assistant bubble every 20 ms until it leaves the
// `streaming` state. With `drop`, closes the socket once the bubble shows text.
async function observeAnswer({ assistantsBefore, errorsBefore, drop, timeoutMs }) {
  const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
  const t0 = performance.now();
  const samples = [];
  let firstTextMs = null;
  let dropped = null;
  for (;;) {
    const errors = document.querySelectorAll('#messages li.msg.error');
    if (errors.length > errorsBefore) return { error: errors[errors.length - 1].textContent };
    const all = document.querySelectorAll('#messages li.msg.assistant');
    const bubble = all.length > assistantsBefore ? all[all.length - 1] : null;
    if (bubble) {
      const text = bubble.querySelector('.text').textContent;
      if (bubble.dataset.state !== 'streaming') {
        return { samples, final: text, state: bubble.dataset.state, firstTextMs, dropped,
          elapsedMs: Math.round(performance.now() - t0) };
      }
      if (text && samples[samples.length - 1] !== text) samples.push(text);
      if (text && firstTextMs === null) firstTextMs = Math.round(performance.now() - t0);
      if (drop && text && !dropped) {
        const s = window.chatDemo.state;
        dropped = { atText: text, lastSeq: s.lastSeq, reconnectsBefore: s.counters.reconnects };
        window.chatDemo.dropConnection();
      }
    }
    if (performance.now() - t0 > timeoutMs) {
      return { timeout: true, samples, final: bubble && bubble.querySelector('.text').textContent };
    }
    await sleep(20);
  }
}

const counts = () => ({
  assistantsBefore: document.querySelectorAll('#messages li.msg.assistant').length,
  errorsBefore: document.querySelectorAll('#messages li.msg.error').length,
});

async function sendMessage(page, text) {
  await send(page, text);
  await page.waitForFunction((t) => [...document.querySelectorAll('#messages li.msg.user .text')]
    .some((el) => el.textContent === t), text, { timeout: 5000 })
    .catch(() => fail(`the user bubble "${text}" did not appear`));
  const left = await page.locator('#input').inputValue();
  if (left !== '') fail(`the composer was not cleared after sending (still "${left}")`);
}

// Every text shown while streaming must be a prefix of the final answer.
function checkPrefixes(samples, final, label) {
  for (const s of samples) {
    if (!final.startsWith(s)) {
      fail(`${label}: a streamed text was not a prefix of the final answer (duplicated or lost segment)\n`
        + `  shown: ${JSON.stringify(s)}\n  final: ${JSON.stringify(final)}`);
    }
  }
}

async function noHorizontalScroll(page, width) {
  const r = await page.evaluate(() => ({
    doc: document.documentElement.scrollWidth, win: window.innerWidth,
    list: document.getElementById('messages').scrollWidth,
    listClient: document.getElementById('messages').clientWidth,
  }));
  if (r.doc > r.win || r.list > r.listClient) fail(`horizontal scroll at ${width} px: ${JSON.stringify(r)}`);
}

run(6, async (browser) => {
  fs.mkdirSync(shotDir, { recursive: true });
  const consoleErrors = [];
  const completes = [];
  let wireChunks = 0;
  let sockets = 0;
  let replayed = 0; // events a resumed socket delivered from before its attach
  const { page, errors: pageErrors } = await openPage(browser, { viewport: { width: 390, height: 844 },
    deviceScaleFactor: 2, isMobile: true, hasTouch: true });
  page.on('console', (m) => { if (m.type() === 'error') consoleErrors.push(m.text()); });
  page.on('websocket', (ws) => {
    sockets += 1;
    let attachSeq = null;
    ws.on('framereceived', ({ payload }) => {
      let ev;
      try { ev = JSON.parse(String(payload)); } catch { return; }
      if (ev.type === 'status' && ev.status === 'connected') attachSeq = ev.last_seq;
      else if (/[?&]last_seq=/.test(ws.url()) && typeof ev.seq === 'number' && ev.seq <= attachSeq) replayed += 1;
      if (ev.type === 'chunk') wireChunks += 1;
      if (ev.type === 'complete') completes.push(ev);
    });
  });

  step('open');
  const res = await page.goto(`${base}/demo`, { timeout: STEP_MS });
  if (!res || !res.ok()) fail(`GET /demo answered ${res && res.status()}`);
  const title = await page.title();
  if (title !== 'Chat gateway demo') fail(`unexpected title ${JSON.stringify(title)}`);
  await waitConnected(page, 'first load');
  const sessionId = await page.evaluate(() => window.chatDemo.state.sessionId);

  step('first message');
  let before = await page.evaluate(counts);
  await sendMessage(page, FIRST);
  const a1 = await page.evaluate(observeAnswer, { ...before, drop: false, timeoutMs: STEP_MS });
  if (a1.error) fail(`the page showed an error: ${a1.error}`);
  if (a1.timeout) fail(`no completed answer within ${STEP_MS} ms (last text ${JSON.stringify(a1.final)})`);
  if (a1.state !== 'complete') fail(`answer ended in state "${a1.state}"`);
  const growth1 = a1.samples.filter((s) => s !== a1.final);
  if (growth1.length < 2) {
    fail(`the answer did not visibly stream: ${growth1.length} intermediate text(s) before completion `
      + '(the server must stream slowly enough, e.g. a per-token delay)');
  }
  checkPrefixes(a1.samples, a1.final, 'first answer');
  await noHorizontalScroll(page, 390);
  await page.screenshot({ path: path.join(shotDir, 'demo-chat.png') });

  step('second message with a dropped connection');
  await waitConnected(page, 'before the second message');
  before = await page.evaluate(counts);
  const seqBefore = await page.evaluate(() => window.chatDemo.state.lastSeq);
  await sendMessage(page, SECOND);
  const a2 = await page.evaluate(observeAnswer, { ...before, drop: true, timeoutMs: STEP_MS });
  if (a2.error) fail(`the page showed an error: ${a2.error}`);
  if (a2.timeout) fail(`no completed answer within ${STEP_MS} ms after the drop (last text ${JSON.stringify(a2.final)})`);
  if (!a2.dropped) fail('the answer completed before its first chunk could be observed: stream more slowly');
  if (a2.state !== 'complete') fail(`answer ended in state "${a2.state}"`);
  await waitConnected(page, 'after the drop');
  const after = await page.evaluate(() => {
    const s = window.chatDemo.state;
    return { reconnects: s.counters.reconnects, url: s.lastSocketUrl, dups: s.counters.duplicatesIgnored,
      chunks: s.counters.chunks };
  });
  if (after.reconnects <= a2.dropped.reconnectsBefore) fail('the page did not reconnect after the drop');
  if (!/[?&]last_seq=\d+/.test(after.url)) fail(`the reconnect did not ask to resume: ${after.url}`);
  const resumedFrom = Number(after.url.match(/last_seq=(\d+)/)[1]);
  if (resumedFrom <= seqBefore) fail(`resumed from last_seq=${resumedFrom}, not past the events already shown`);
  checkPrefixes(a2.samples, a2.final, 'second answer');
  const lastComplete = completes[completes.length - 1];
  if (!lastComplete || lastComplete.full_response !== a2.final) {
    fail(`the final bubble differs from the complete event\n  bubble:   ${JSON.stringify(a2.final)}\n`
      + `  complete: ${JSON.stringify(lastComplete && lastComplete.full_response)}`);
  }
  const stored = await history(base, sessionId);
  const storedAssistant = stored.filter((m) => m.role === 'assistant');
  const last = storedAssistant[storedAssistant.length - 1];
  if (!last || last.content !== a2.final) {
    fail(`the final bubble differs from the stored answer\n  bubble: ${JSON.stringify(a2.final)}\n`
      + `  stored: ${JSON.stringify(last && last.content)}`);
  }

  step('reload');
  await page.reload({ timeout: STEP_MS });
  await waitConnected(page, 'after reload');
  const expected = stored.filter((m) => m.role === 'user' || m.role === 'assistant')
    .map((m) => ({ role: m.role, text: m.content }));
  const shownOk = await page.waitForFunction((exp) => {
    const shown = [...document.querySelectorAll('#messages li.msg.user, #messages li.msg.assistant')]
      .map((li) => ({ role: li.classList.contains('user') ? 'user' : 'assistant', text: li.querySelector('.text').textContent }));
    return JSON.stringify(shown) === JSON.stringify(exp);
  }, expected, { timeout: STEP_MS }).then(() => true, () => false);
  if (!shownOk) {
    const shown = await page.evaluate(() => [...document.querySelectorAll('#messages li.msg')]
      .map((li) => `${li.className}: ${li.querySelector('.text').textContent}`));
    fail(`history after reload does not match the stored messages\n  shown: ${JSON.stringify(shown)}\n`
      + `  stored: ${JSON.stringify(expected)}`);
  }
  if (expected.length < 4 || expected[0].text !== FIRST) fail(`stored history is not both exchanges: ${JSON.stringify(expected)}`);
  const sameSession = await page.evaluate(() => window.chatDemo.state.sessionId);
  if (sameSession !== sessionId) fail(`the reload switched sessions (${sessionId} -> ${sameSession})`);
  await noHorizontalScroll(page, 390);
  await page.screenshot({ path: path.join(shotDir, 'demo-resumed.png') });
  await page.setViewportSize({ width: 360, height: 740 });
  await noHorizontalScroll(page, 360);

  step('page errors');
  if (pageErrors.length) fail(`uncaught errors in the page: ${pageErrors.join(' | ')}`);
  for (const e of consoleErrors) console.error(`warning: console error in the page: ${e}`);

  const result = {
    ok: true,
    session_id: sessionId,
    first_answer: { intermediate_texts: growth1.length, first_text_ms: a1.firstTextMs, total_ms: a1.elapsedMs,
      chars: a1.final.length },
    second_answer: { intermediate_texts: a2.samples.filter((s) => s !== a2.final).length,
      dropped_at_chars: a2.dropped.atText.length, dropped_at_seq: a2.dropped.lastSeq, resumed_from_seq: resumedFrom,
      total_ms: a2.elapsedMs, chars: a2.final.length },
    chunks_rendered: after.chunks,
    chunks_on_wire: wireChunks,
    duplicates_ignored: after.dups,
    replayed_events: replayed,
    sockets_opened: sockets,
    history_messages: expected.length,
    console_errors: consoleErrors.length,
  };
  console.log(`RESULT ${JSON.stringify(result)}`);
});
