// The /demo page shows the agent's function calls: live, the moment `function_called`
// arrives (before the answer's first chunk), and again from history after a reload.
//
// usage: node demo-tools-test.mjs <baseUrl> <screenshotDir> <message> <toolName>
//
// The gateway's agent must have a tool <toolName> that <message> makes the model call
// (mock-llm: `[mock:tool=NAME]`), and stream slowly enough for the tool line to be seen
// before the text (a first-token delay).
// Steps (any unmet one prints `FAIL [step] reason` on stderr and exits 1):
//  1. open /demo, send <message>; a MutationObserver records each tool line the moment
//     it is added to the assistant bubble, with the bubble's text at that moment;
//  2. the answer completes; its bubble has exactly one tool line, named <toolName>, with
//     the `call_id` of the `function_called` frame, added while the text was still empty,
//     and now marked `called` -> screenshot demo-tools.png;
//  3. reload: the answer rendered from history carries the same tool line (same call_id,
//     as stored in `function_calls`).
// On success prints one line: RESULT {"ok":true, ...}.
import path from 'node:path';
import { STEP_MS, args, fail, openPage, run, send, step, waitAnswered, waitConnected } from './harness.mjs';

const [base, shotDir, message, toolName] = args('demo-tools-test.mjs',
  ['baseUrl', 'screenshotDir', 'message', 'toolName']);

// In the page: records every tool line added to an assistant bubble, with its text then.
function watchTools() {
  window.toolLog = [];
  new MutationObserver((records) => {
    for (const r of records) {
      for (const node of r.addedNodes) {
        if (node.nodeName !== 'LI' || !node.parentElement || !node.parentElement.matches('li.msg.assistant .tools')) continue;
        const bubble = node.closest('li.msg.assistant');
        window.toolLog.push({ name: node.dataset.name, callId: node.dataset.callId, state: node.dataset.state,
          textThen: bubble.querySelector('.text').textContent });
      }
    }
  }).observe(document.getElementById('messages'), { childList: true, subtree: true });
}

const toolLines = () => [...document.querySelectorAll('#messages li.msg.assistant')].map((li) => ({
  text: li.querySelector('.text').textContent,
  state: li.dataset.state,
  tools: [...li.querySelectorAll('.tools li')].map((t) => ({ name: t.dataset.name, callId: t.dataset.callId,
    state: t.dataset.state, shown: t.textContent })),
}));

run(4, async (browser) => {
  const frames = [];
  const { page, errors: pageErrors } = await openPage(browser, { viewport: { width: 390, height: 844 } });
  page.on('websocket', (ws) => ws.on('framereceived', ({ payload }) => {
    try { frames.push(JSON.parse(String(payload))); } catch { /* not JSON */ }
  }));

  step('open');
  const res = await page.goto(`${base}/demo`, { timeout: STEP_MS });
  if (!res || !res.ok()) fail(`GET /demo answered ${res && res.status()}`);
  await waitConnected(page, 'first load');
  const sessionId = await page.evaluate(() => window.chatDemo.state.sessionId);
  await page.evaluate(watchTools);

  step('live');
  await send(page, message);
  await waitAnswered(page, 'live');
  const log = await page.evaluate(() => window.toolLog);
  const called = frames.filter((f) => f.type === 'function_called');
  if (called.length !== 1) fail(`expected one function_called frame, got ${JSON.stringify(called)}`);
  if (log.length !== 1) fail(`expected one tool line added, got ${JSON.stringify(log)}`);
  const [added] = log;
  if (added.name !== toolName || added.callId !== called[0].call_id) {
    fail(`the tool line ${JSON.stringify(added)} is not the call ${JSON.stringify(called[0])}`);
  }
  if (added.state !== 'calling' || added.textThen !== '') {
    fail(`the tool line was not shown while the call ran, before any text: ${JSON.stringify(added)}`);
  }
  const live = (await page.evaluate(toolLines)).at(-1);
  if (!live.text) fail('the answer is empty');
  if (live.tools.length !== 1 || live.tools[0].state !== 'called' || !live.tools[0].shown.includes(toolName)) {
    fail(`after complete the bubble's tool line is ${JSON.stringify(live.tools)}`);
  }
  await page.screenshot({ path: path.join(shotDir, 'demo-tools.png') });

  step('reload');
  await page.reload({ timeout: STEP_MS });
  await waitConnected(page, 'after reload');
  const ok = await page.waitForFunction((t) => {
    const all = document.querySelectorAll('#messages li.msg.assistant');
    return all.length && all[all.length - 1].querySelector('.text').textContent === t;
  }, live.text, { timeout: STEP_MS }).then(() => true, () => false);
  if (!ok) fail('the answer was not rendered from history');
  const again = (await page.evaluate(toolLines)).at(-1);
  if (JSON.stringify(again.tools) !== JSON.stringify(live.tools)) {
    fail(`from history the tool lines are ${JSON.stringify(again.tools)}, live they were ${JSON.stringify(live.tools)}`);
  }
  if (pageErrors.length) fail(`uncaught errors in the page: ${pageErrors.join(' | ')}`);
  console.log(`RESULT ${JSON.stringify({ ok: true, session_id: sessionId, call_id: added.callId,
    tool_line: live.tools[0].shown, answer_chars: live.text.length })}`);
});
