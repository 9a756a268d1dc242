// The /demo page on a gateway with authentication on, in headless Chromium: the token
// is taken from the page's fragment (or, without one, from a prompt), removed from the
// address at once, and never put in any URL the page requests; the page obeys its
// Content-Security-Policy (no violation is reported).
//
// usage: node demo-token-test.mjs <baseUrl> <token>
// Prints `RESULT {json}` on success; exits non-zero with `FAIL [step] reason` otherwise.
import { STEP_MS, args, fail, openPage, run, send, step, waitAnswered, waitConnected } from './harness.mjs';

const [base, token] = args('demo-token-test.mjs', ['baseUrl', 'token']);

// Opens `url` in a fresh context and follows what the page requests and shows.
async function visit(browser, url, { answerPrompt }) {
  const { context, page, errors } = await openPage(browser);
  const seen = { requested: [], sockets: [], prompts: 0, violations: [], pageErrors: errors };
  page.on('request', (r) => seen.requested.push(r.url()));
  page.on('websocket', (ws) => seen.sockets.push(ws.url()));
  page.on('dialog', async (d) => {
    seen.prompts += 1;
    if (d.type() === 'prompt' && answerPrompt) await d.accept(token); else await d.dismiss();
  });
  await page.addInitScript(() => {
    window.__violations = [];
    document.addEventListener('securitypolicyviolation',
      (e) => window.__violations.push(`${e.violatedDirective} ${e.blockedURI}`));
  });
  const res = await page.goto(url, { timeout: STEP_MS });
  if (!res || !res.ok()) fail(`GET ${url} answered ${res && res.status()}`);
  await waitConnected(page, url);
  // One exchange, to be sure REST and the socket both carry the token.
  await send(page, 'hello with a token');
  await waitAnswered(page, url);
  seen.address = page.url();
  seen.historyLength = await page.evaluate(() => history.length);
  seen.violations = await page.evaluate(() => window.__violations);
  seen.stored = await page.evaluate(() => sessionStorage.getItem('chat-demo-token') !== null);
  await context.close();
  return seen;
}

function checkNoTokenInUrls(seen, what) {
  if (seen.address.includes(token) || seen.address.includes('token=')) {
    fail(`${what}: the address still holds the token: ${seen.address}`);
  }
  for (const u of [...seen.requested, ...seen.sockets]) {
    if (u.includes(token)) fail(`${what}: a requested URL holds the token: ${u}`);
  }
  if (seen.violations.length) fail(`${what}: CSP violations: ${seen.violations.join(' | ')}`);
  if (seen.pageErrors.length) fail(`${what}: page errors: ${seen.pageErrors.join(' | ')}`);
  if (!seen.sockets.length) fail(`${what}: no socket was opened`);
}

run(4, async (browser) => {
  step('fragment');
  const byFragment = await visit(browser, `${base}/demo#token=${token}`, { answerPrompt: false });
  checkNoTokenInUrls(byFragment, 'fragment');
  if (byFragment.prompts !== 0) fail('a token in the fragment still prompted');

  step('query');
  const byQuery = await visit(browser, `${base}/demo?token=${token}`, { answerPrompt: false });
  if (byQuery.address.includes('token=')) fail(`an old ?token= stayed in the address: ${byQuery.address}`);
  if (byQuery.violations.length) fail(`CSP violations: ${byQuery.violations.join(' | ')}`);

  step('prompt');
  const byPrompt = await visit(browser, `${base}/demo`, { answerPrompt: true });
  checkNoTokenInUrls(byPrompt, 'prompt');
  if (byPrompt.prompts < 1) fail('no prompt asked for the token');

  const result = {
    ok: true,
    fragment: { address: byFragment.address, prompts: byFragment.prompts, sockets: byFragment.sockets },
    query: { address: byQuery.address },
    prompt: { address: byPrompt.address, prompts: byPrompt.prompts, sockets: byPrompt.sockets },
    urls_requested: byFragment.requested.length + byPrompt.requested.length,
  };
  console.log(`RESULT ${JSON.stringify(result)}`);
});
