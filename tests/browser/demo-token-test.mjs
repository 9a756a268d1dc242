// The /demo page on a gateway with authentication on, in headless Chromium: the token
// is taken from the page's fragment (or, without one, from a prompt), removed from the
// address at once, and never put in any URL the page requests; the page obeys its
// Content-Security-Policy (no violation is reported).
//
// usage: node demo-token-test.mjs <baseUrl> <token>
// Prints `RESULT {json}` on success; exits non-zero with `FAIL [step] reason` otherwise.
import { chromium } from 'playwright-core';

const [baseArg, token] = process.argv.slice(2);
if (!baseArg || !token) {
  console.error('usage: node demo-token-test.mjs <baseUrl> <token>');
  process.exit(2);
}
const base = baseArg.replace(/\/+$/, '');
const STEP_MS = Number(process.env.DEMO_STEP_TIMEOUT_MS || 30000);
const CHROMIUM = process.env.CHROMIUM_PATH || '/usr/bin/chromium';
let step = 'launch';
const fail = (msg) => { throw new Error(msg); };
setTimeout(() => {
  console.error(`FAIL [${step}] the whole run took longer than ${(STEP_MS * 4) / 1000} s`);
  process.exit(1);
}, STEP_MS * 4).unref();

// Opens `url` in a fresh context and follows what the page requests and shows.
async function visit(browser, url, { answerPrompt }) {
  const context = await browser.newContext();
  const page = await context.newPage();
  const seen = { requested: [], sockets: [], prompts: 0, violations: [], pageErrors: [] };
  page.on('request', (r) => seen.requested.push(r.url()));
  page.on('websocket', (ws) => seen.sockets.push(ws.url()));
  page.on('pageerror', (e) => seen.pageErrors.push(String(e)));
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
  await page.waitForFunction(() => window.chatDemo && window.chatDemo.state.status === 'connected',
    null, { timeout: STEP_MS }).catch(() => fail(`${url}: the page never connected`));
  // One exchange, to be sure REST and the socket both carry the token.
  await page.locator('#input').fill('hello with a token');
  await page.locator('#input').press('Enter');
  await page.waitForFunction(() => {
    const all = document.querySelectorAll('#messages li.msg.assistant');
    return all.length > 0 && all[all.length - 1].dataset.state === 'complete';
  }, null, { timeout: STEP_MS }).catch(() => fail(`${url}: no complete answer`));
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

async function main() {
  const browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
  try {
    step = 'fragment';
    const byFragment = await visit(browser, `${base}/demo#token=${token}`, { answerPrompt: false });
    checkNoTokenInUrls(byFragment, 'fragment');
    if (byFragment.prompts !== 0) fail('a token in the fragment still prompted');

    step = 'query';
    const byQuery = await visit(browser, `${base}/demo?token=${token}`, { answerPrompt: false });
    if (byQuery.address.includes('token=')) fail(`an old ?token= stayed in the address: ${byQuery.address}`);
    if (byQuery.violations.length) fail(`CSP violations: ${byQuery.violations.join(' | ')}`);

    step = 'prompt';
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
  } finally {
    await browser.close().catch(() => {});
  }
}

main().then(() => process.exit(0), (err) => {
  console.error(`FAIL [${step}] ${err && err.message ? err.message : err}`);
  process.exit(1);
});
