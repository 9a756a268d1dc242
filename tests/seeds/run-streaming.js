#!/usr/bin/env node
// Drives the UNCHANGED PipecatChatClient of seed 004 (./pipecat-chat-client.js) against a
// running gateway, exactly like the seed's usage example, and reports what it received.
//
//   node run-streaming.js <baseUrl e.g. http://127.0.0.1:8080> <message1> [message2 ...]
//
// Output choice: the seed class console.log()s its own progress lines; this script sends
// console.log to STDERR, so STDOUT carries exactly one line, `RESULT <json>`, on success:
//   RESULT {"session_id": "...",
//           "events": [{"event":"connected"}, {"event":"typing"},
//                      {"event":"function_called","data":{"function_name","timestamp"}},
//                      {"event":"chunk","data":"..."}, {"event":"message","data":"<full_response>"},
//                      {"event":"error","data":"<error text>"}, {"event":"ready"}, ...,
//                      {"event":"disconnected"}],
//           "frames": [<every server frame, parsed JSON, in order>],
//           "info": <getSessionInfo() result>,
//           "responses": [<full_response per message, null if the turn ended in an error>],
//           "close": {"code": n, "reason": "..."},
//           "info_status_after_delete": <HTTP status of GET .../info after disconnect(), expect 404>}
// A turn ends when the client has emitted `message` (or `error`) AND then `ready`; only
// then is the next message sent. Any failure (no turn end within 30 s, socket closed
// early, HTTP error) prints `FAIL <reason>` and `PARTIAL <json>` on stderr and exits 1.
'use strict';

// The gateway under test is local: never route the client's axios calls through a proxy.
for (const k of ['HTTP_PROXY', 'http_proxy', 'HTTPS_PROXY', 'https_proxy', 'ALL_PROXY', 'all_proxy']) {
  delete process.env[k];
}
console.log = (...args) => console.error(...args);
console.info = console.log;

const PipecatChatClient = require('./pipecat-chat-client');
const axios = require('axios');

const TURN_TIMEOUT_MS = Number(process.env.SEED_TURN_TIMEOUT_MS || 30000);
const CLOSE_WAIT_MS = 5000;

const [baseUrlArg, ...messages] = process.argv.slice(2);
if (!baseUrlArg || messages.length === 0) {
  console.error('usage: node run-streaming.js <baseUrl> <message1> [message2 ...]');
  process.exit(2);
}
const baseUrl = baseUrlArg.replace(/\/+$/, '');

const result = { session_id: null, events: [], frames: [], info: null, responses: [], close: null, info_status_after_delete: null };

function fail(reason) {
  console.error(`FAIL ${String(reason).replace(/\s*\n\s*/g, ' ')}`);
  console.error(`PARTIAL ${JSON.stringify(result)}`);
  process.exit(1);
}

function describeError(err) {
  if (err && err.response) {
    const { status, data } = err.response;
    return `${err.message} (HTTP ${status}: ${typeof data === 'string' ? data : JSON.stringify(data)})`;
  }
  if (err && err.message !== undefined) return err.code ? `${err.message} [${err.code}]` : err.message;
  return String(err);
}

const client = new PipecatChatClient(baseUrl);

// Record every event the client emits, in order.
const rec = (event, data) => result.events.push(data === undefined ? { event } : { event, data });
client.on('connected', () => rec('connected'));
client.on('typing', () => rec('typing'));
client.on('ready', () => rec('ready'));
client.on('function_called', (d) => rec('function_called', d));
client.on('chunk', (text) => rec('chunk', text));
client.on('message', (full) => rec('message', full));
client.on('error', (err) => rec('error', err && err.message !== undefined ? err.message : String(err)));
client.on('disconnected', () => rec('disconnected'));

let closeInfo = null;
let onEarlyClose = null; // set while a turn is in flight
let onClosed = null;

function attachRawListeners(ws) {
  ws.on('message', (data, isBinary) => {
    const text = Buffer.isBuffer(data) ? data.toString('utf8') : Buffer.concat([].concat(data)).toString('utf8');
    try {
      result.frames.push(JSON.parse(text));
    } catch (_) {
      result.frames.push({ _unparsed: text, _binary: !!isBinary });
    }
  });
  ws.on('close', (code, reason) => {
    closeInfo = { code, reason: reason ? reason.toString('utf8') : '' };
    result.close = closeInfo;
    if (onEarlyClose) onEarlyClose(closeInfo);
    if (onClosed) onClosed();
  });
}

function runTurn(text, n) {
  return new Promise((resolve, reject) => {
    let outcome = null;
    const cleanup = () => {
      clearTimeout(timer);
      client.off('message', onMessage);
      client.off('error', onError);
      client.off('ready', onReady);
      onEarlyClose = null;
    };
    const timer = setTimeout(() => {
      cleanup();
      reject(new Error(outcome
        ? `message #${n} (${JSON.stringify(text)}): got ${outcome.kind} but no 'ready' within ${TURN_TIMEOUT_MS} ms`
        : `message #${n} (${JSON.stringify(text)}): no 'complete' or 'error' within ${TURN_TIMEOUT_MS} ms`));
    }, TURN_TIMEOUT_MS);
    const onMessage = (full) => { if (!outcome) outcome = { kind: 'complete', response: full }; };
    const onError = () => { if (!outcome) outcome = { kind: 'error', response: null }; };
    const onReady = () => {
      if (outcome) { cleanup(); resolve(outcome.response); }
    };
    onEarlyClose = (c) => {
      cleanup();
      reject(new Error(`message #${n} (${JSON.stringify(text)}): socket closed (code ${c.code} ${JSON.stringify(c.reason)}) before the turn ended`));
    };
    client.on('message', onMessage);
    client.on('error', onError);
    client.on('ready', onReady);
    try {
      client.sendMessage(text);
    } catch (err) {
      cleanup();
      reject(err);
    }
  });
}

async function main() {
  // 1. Create session (as in the seed's usage example)
  try {
    await client.createSession('user_12345', { source: 'dashboard', user_name: 'John Doe' });
  } catch (err) {
    fail(`createSession: ${describeError(err)}`);
  }
  result.session_id = client.sessionId;
  if (typeof result.session_id !== 'string' || result.session_id.length === 0) {
    fail(`createSession: response had no string session_id (got ${JSON.stringify(result.session_id)})`);
  }

  // 2. Connect WebSocket. connect() creates client.ws synchronously, so the raw-frame
  //    listener is attached before any frame (e.g. the `connected` status) can arrive.
  const connecting = client.connect();
  if (client.ws) attachRawListeners(client.ws);
  try {
    await connecting;
  } catch (err) {
    fail(`connect: ${describeError(err)}`);
  }

  // 3. Send messages, one turn at a time.
  for (let i = 0; i < messages.length; i++) {
    try {
      result.responses.push(await runTurn(messages[i], i + 1));
    } catch (err) {
      fail(describeError(err));
    }
  }

  // 4. Session info, then cleanup (disconnect() closes the socket and DELETEs the session).
  try {
    result.info = await client.getSessionInfo();
  } catch (err) {
    fail(`getSessionInfo: ${describeError(err)}`);
  }
  const closed = new Promise((resolve) => {
    if (closeInfo) return resolve();
    onClosed = resolve;
    setTimeout(resolve, CLOSE_WAIT_MS);
  });
  await client.disconnect();
  await closed;
  if (!closeInfo) fail(`socket not closed within ${CLOSE_WAIT_MS} ms after disconnect()`);

  // Not part of the seed: tell the caller whether the DELETE really removed the session.
  try {
    const r = await axios.get(`${baseUrl}/api/session/${result.session_id}/info`, { validateStatus: () => true });
    result.info_status_after_delete = r.status;
  } catch (err) {
    fail(`GET info after delete: ${describeError(err)}`);
  }

  process.stdout.write(`RESULT ${JSON.stringify(result)}\n`, () => process.exit(0));
}

main().catch((err) => fail(`unexpected: ${describeError(err)}`));
