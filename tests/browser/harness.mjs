// What every /demo test shares: its arguments, the step timeout, one headless Chromium,
// a page that collects its uncaught errors, and the reporting contract (`RESULT {json}`
// on stdout and exit 0; `FAIL [step] reason` on stderr and exit 1; usage and exit 2).
import { chromium } from 'playwright-core';

export const STEP_MS = Number(process.env.DEMO_STEP_TIMEOUT_MS || 30000);
const CHROMIUM = process.env.CHROMIUM_PATH || '/usr/bin/chromium';

let current = 'launch';
/** Names the step a failure is reported under. */
export const step = (name) => { current = name; };
export const fail = (msg) => { throw new Error(msg); };

/** The command-line arguments `names` (all required; the first, the base URL, without trailing slashes). */
export function args(script, names) {
  const values = process.argv.slice(2, 2 + names.length);
  if (values.length < names.length || values.some((v) => !v)) {
    console.error(`usage: node ${script} ${names.map((n) => `<${n}>`).join(' ')}`);
    process.exit(2);
  }
  values[0] = values[0].replace(/\/+$/, '');
  return values;
}

/**
 * Runs `body(browser)` in a fresh Chromium, closed afterwards, and exits as the contract
 * says. A hard stop after `steps` step timeouts, so a hung browser never hangs the
 * calling test.
 */
export function run(steps, body) {
  setTimeout(() => {
    console.error(`FAIL [${current}] the whole run took longer than ${(STEP_MS * steps) / 1000} s`);
    process.exit(1);
  }, STEP_MS * steps).unref();
  const main = async () => {
    const browser = await chromium.launch({
      executablePath: CHROMIUM,
      headless: true,
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
        '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    });
    try {
      await body(browser);
    } finally {
      await browser.close().catch(() => {});
    }
  };
  main().then(() => process.exit(0), (err) => {
    console.error(`FAIL [${current}] ${err && err.message ? err.message : err}`);
    process.exit(1);
  });
}

/** A page in a new context with `options`; `errors` collects its uncaught errors. */
export async function openPage(browser, options = {}) {
  const context = await browser.newContext(options);
  const page = await context.newPage();
  const errors = [];
  page.on('pageerror', (e) => errors.push(String(e)));
  return { context, page, errors };
}

export async function waitConnected(page, what) {
  await page.waitForFunction(() => window.chatDemo && window.chatDemo.state.status === 'connected',
    null, { timeout: STEP_MS }).catch(async () => {
    const st = await page.evaluate(() => window.chatDemo && window.chatDemo.state.status).catch(() => '?');
    fail(`${what}: the page did not reach "connected" within ${STEP_MS} ms (status: ${st})`);
  });
}

/** Types `text` in the composer and sends it. */
export async function send(page, text) {
  await page.locator('#input').fill(text);
  await page.locator('#input').press('Enter');
}

/** Waits until the newest assistant bubble is complete. */
export async function waitAnswered(page, what) {
  await page.waitForFunction(() => {
    const all = document.querySelectorAll('#messages li.msg.assistant');
    return all.length > 0 && all[all.length - 1].dataset.state === 'complete';
  }, null, { timeout: STEP_MS }).catch(() => fail(`${what}: the answer did not complete`));
}

/** The session's stored messages, oldest first. */
export async function history(base, sessionId) {
  const res = await fetch(`${base}/api/session/${encodeURIComponent(sessionId)}/messages?limit=200`);
  if (!res.ok) fail(`GET messages answered ${res.status}`);
  return (await res.json()).messages;
}
