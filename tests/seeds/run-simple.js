#!/usr/bin/env node
// Runs the "Vanilla JavaScript" client of the simple client's seed document (000_d979786117ad5480.txt)
// against a running gateway and reports what it received.
//
//   node run-simple.js <wsUrl e.g. ws://127.0.0.1:8080/ws/user123> <message1> [message2 ...]
//
// Node 20 has no global WebSocket, so the browser API is provided by the `ws` package;
// the seed's code below is otherwise as written (only its hard-coded URL is replaced by the
// argument), and its UI helpers showTypingIndicator / hideTypingIndicator / displayMessage
// record what happened. Each message is sent after the previous answer was displayed
// (or an `error` frame arrived, which the seed itself ignores); 30 s timeout per message.
//
// Output choice: console.log (the seed logs every frame) goes to STDERR, so STDOUT carries
// exactly one line on success:
//   RESULT {"frames":[<every server frame, parsed JSON, in order>],
//           "displayed":["<assistant message>", ...], "typing_count": <n>}
// On failure: `FAIL <reason>` and `PARTIAL <json>` on stderr, exit code 1.
'use strict';

console.log = (...args) => console.error(...args);
console.info = console.log;

globalThis.WebSocket = require('ws');

const TURN_TIMEOUT_MS = Number(process.env.SEED_TURN_TIMEOUT_MS || 30000);
const CLOSE_WAIT_MS = 5000;

const [SEED_WS_URL, ...messages] = process.argv.slice(2);
if (!SEED_WS_URL || messages.length === 0) {
  console.error('usage: node run-simple.js <wsUrl> <message1> [message2 ...]');
  process.exit(2);
}

const result = { frames: [], displayed: [], typing_count: 0 };
let typingVisible = false;
let turnEnded = null; // resolver of the turn in flight

function fail(reason) {
  console.error(`FAIL ${String(reason).replace(/\s*\n\s*/g, ' ')}`);
  console.error(`PARTIAL ${JSON.stringify(result)}`);
  process.exit(1);
}

// ---- the seed page's UI helpers, implemented as recorders ----
function showTypingIndicator() {
  result.typing_count += 1;
  typingVisible = true;
}
function hideTypingIndicator() {
  typingVisible = false;
}
function displayMessage(text, sender) {
  if (sender !== 'bot') fail(`displayMessage called with sender ${JSON.stringify(sender)}`);
  result.displayed.push(text);
  if (turnEnded) turnEnded('assistant');
}

// ---- begin seed 000 "Vanilla JavaScript", as written (URL replaced by the argument) ----
// Connect to your Hugging Face WebSocket
const ws = new WebSocket(SEED_WS_URL);

ws.onopen = function() {
    console.log('Connected to Hugging Face backend!');
};

ws.onmessage = function(event) {
    const data = JSON.parse(event.data);
    console.log('Received:', data);
    
    if (data.type === 'typing') {
        // Show typing indicator
        showTypingIndicator();
    } else if (data.type === 'assistant') {
        // Hide typing and show response
        hideTypingIndicator();
        displayMessage(data.message, 'bot');
    }
};

// Send a message
function sendMessage(message) {
    ws.send(JSON.stringify({
        message: message,
        user_id: "web_user",
        session_id: "web_session"
    }));
}
// ---- end seed 000 ----

// ---- driver (not part of the seed) ----
let closeInfo = null;
let onClose = null;

ws.addEventListener('message', (event) => {
  const text = typeof event.data === 'string' ? event.data : Buffer.from(event.data).toString('utf8');
  let frame;
  try {
    frame = JSON.parse(text);
  } catch (_) {
    frame = { _unparsed: text, _binary: typeof event.data !== 'string' };
  }
  result.frames.push(frame);
  // The seed ignores `error` frames; end the turn so the caller can assert on it.
  if (frame && frame.type === 'error' && turnEnded) turnEnded('error');
});
ws.addEventListener('error', (event) => {
  fail(`websocket error: ${(event && event.message) || event}`);
});
ws.addEventListener('close', (event) => {
  closeInfo = { code: event.code, reason: event.reason };
  if (onClose) onClose(closeInfo);
});

function waitOpen() {
  return new Promise((resolve, reject) => {
    if (ws.readyState === WebSocket.OPEN) return resolve();
    const timer = setTimeout(() => reject(new Error(`not open within ${TURN_TIMEOUT_MS} ms`)), TURN_TIMEOUT_MS);
    ws.addEventListener('open', () => { clearTimeout(timer); resolve(); }, { once: true });
    onClose = (c) => { clearTimeout(timer); reject(new Error(`closed before open (code ${c.code} ${JSON.stringify(c.reason)})`)); };
  });
}

function runTurn(text, n) {
  return new Promise((resolve, reject) => {
    const done = (fn, arg) => { clearTimeout(timer); turnEnded = null; onClose = null; fn(arg); };
    const timer = setTimeout(() => done(reject, new Error(
      `message #${n} (${JSON.stringify(text)}): no 'assistant' or 'error' frame within ${TURN_TIMEOUT_MS} ms`)), TURN_TIMEOUT_MS);
    turnEnded = (kind) => done(resolve, kind);
    onClose = (c) => done(reject, new Error(
      `message #${n} (${JSON.stringify(text)}): socket closed (code ${c.code} ${JSON.stringify(c.reason)}) before the answer`));
    sendMessage(text);
  });
}

async function main() {
  try {
    await waitOpen();
  } catch (err) {
    fail(`connect ${SEED_WS_URL}: ${err.message}`);
  }
  onClose = null;
  for (let i = 0; i < messages.length; i++) {
    try {
      await runTurn(messages[i], i + 1);
    } catch (err) {
      fail(err.message);
    }
  }
  if (typingVisible) console.error('note: typing indicator still visible at the end');
  await new Promise((resolve) => {
    if (closeInfo) return resolve();
    onClose = resolve;
    setTimeout(resolve, CLOSE_WAIT_MS);
    ws.close(1000);
  });
  if (!closeInfo) fail(`socket not closed within ${CLOSE_WAIT_MS} ms after close()`);
  process.stdout.write(`RESULT ${JSON.stringify(result)}\n`, () => process.exit(0));
}

main().catch((err) => fail(`unexpected: ${(err && err.message) || err}`));
