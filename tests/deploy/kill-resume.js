#!/usr/bin/env node
// A socket whose gateway container is killed resumes through the load balancer on the
// other gateway, with ?last_seq=N, and loses nothing (scripts/deploy-test.sh runs it
// against docker-compose.yml).
//
//   node kill-resume.js <baseUrl e.g. http://127.0.0.1:8002> <gateway container> <gateway container>
//
// 1. Creates a session and opens its socket through the load balancer; asks each gateway
//    container for /status (`connections`) to learn which one holds the socket.
// 2. Message 1 is answered on that socket. Message 2 is sent; as soon as its `typing`
//    arrives (accepted, a worker is on it) the holding container is `docker kill`ed.
// 3. The client reconnects through the load balancer with last_seq = the newest seq it
//    saw, lands on the surviving gateway (checked with /status), and must get
//    `connected` with recovered:true, then the rest of message 2's events: every seq
//    above last_seq, strictly increasing, none seen before, one `complete` whose text is
//    all of message 2's chunks and is the mock's answer to message 2.
// 4. Message 3 is answered on the new socket.
// Prints `RESULT <json>` on stdout and exits 0; on failure `FAIL <reason>`, exit 1.
'use strict';

const { execFileSync } = require('node:child_process');
const WebSocket = require('ws');

const TIMEOUT_MS = Number(process.env.DEPLOY_TURN_TIMEOUT_MS || 30000);
const [baseArg, gwA, gwB] = process.argv.slice(2);
if (!baseArg || !gwA || !gwB) {
  console.error('usage: node kill-resume.js <baseUrl> <gateway container> <gateway container>');
  process.exit(2);
}
const base = baseArg.replace(/\/+$/, '');
const wsBase = base.replace(/^http/, 'ws');

function fail(reason) {
  console.error(`FAIL ${reason}`);
  process.exit(1);
}

// GET /status inside a gateway container (the gateways are not published): bash's
// /dev/tcp, as the compose health checks do.
function gatewayStatus(container) {
  const out = execFileSync('docker', ['exec', container, 'bash', '-c',
    "exec 3<>/dev/tcp/127.0.0.1/8002 && printf 'GET /status HTTP/1.0\\r\\n\\r\\n' >&3 && cat <&3"],
  { encoding: 'utf8', timeout: 10000 });
  return JSON.parse(out.slice(out.indexOf('\r\n\r\n') + 4));
}

// One socket and everything it received, with a way to wait for a condition on it.
function open(url) {
  return new Promise((resolve, reject) => {
    const sock = { ws: new WebSocket(url), events: [], closed: null, waiters: [] };
    const check = () => {
      sock.waiters = sock.waiters.filter((w) => {
        const hit = w.pred(sock);
        if (hit) w.resolve(hit);
        return !hit;
      });
    };
    sock.wait = (what, pred) => new Promise((res, rej) => {
      const timer = setTimeout(() => rej(new Error(`timeout waiting for ${what}`)), TIMEOUT_MS);
      sock.waiters.push({ pred, resolve: (v) => { clearTimeout(timer); res(v); } });
      check();
    });
    sock.ws.on('message', (data) => { sock.events.push(JSON.parse(data.toString('utf8'))); check(); });
    sock.ws.on('close', (code) => { sock.closed = code; check(); });
    sock.ws.on('error', (err) => reject(err));
    sock.ws.on('open', () => resolve(sock));
  });
}

const isReady = (e, id) => e.type === 'status' && e.status === 'ready' && e.message_id === id;

async function turn(sock, text) {
  const before = sock.events.length;
  sock.ws.send(JSON.stringify({ message: text }));
  const typing = await sock.wait(`typing for ${JSON.stringify(text)}`,
    (s) => s.events.slice(before).find((e) => e.type === 'status' && e.status === 'typing'));
  await sock.wait(`ready for ${JSON.stringify(text)}`, (s) => s.events.find((e) => isReady(e, typing.message_id)));
  return typing.message_id;
}

function holder() {
  const counts = [gwA, gwB].map((c) => gatewayStatus(c).connections);
  if (counts.sort().join() !== '0,1') fail(`expected one socket on exactly one gateway, /status connections: ${counts}`);
  return gatewayStatus(gwA).connections === 1 ? [gwA, gwB] : [gwB, gwA];
}

async function main() {
  const created = await fetch(`${base}/api/create-session`, {
    method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ user_id: 'deploy-test' }),
  });
  if (created.status !== 201) fail(`create-session answered ${created.status}`);
  const { session_id: sessionId } = await created.json();

  const first = await open(`${wsBase}/ws/${sessionId}`);
  await first.wait('connected', (s) => s.events.find((e) => e.status === 'connected'));
  const [victim, survivor] = holder();
  await turn(first, 'first question');

  first.ws.send(JSON.stringify({ message: 'second question' }));
  const typing = await first.wait('typing of message 2',
    (s) => s.events.filter((e) => e.type === 'status' && e.status === 'typing')[1]);
  execFileSync('docker', ['kill', victim], { timeout: 20000 });
  await first.wait('the first socket to close', (s) => s.closed !== null);
  const seen = first.events.filter((e) => typeof e.seq === 'number').map((e) => e.seq);
  const lastSeq = Math.max(...seen);
  const doneBeforeKill = first.events.some((e) => e.type === 'complete' && e.message_id === typing.message_id);

  const second = await open(`${wsBase}/ws/${sessionId}?last_seq=${lastSeq}`);
  const connected = await second.wait('connected after resume', (s) => s.events.find((e) => e.status === 'connected'));
  if (connected.recovered !== true) fail(`resume: connected.recovered is ${connected.recovered}`);
  if (gatewayStatus(survivor).connections !== 1) fail('the resumed socket is not on the surviving gateway');
  await second.wait('ready of message 2 after resume', (s) => s.events.find((e) => isReady(e, typing.message_id)));

  const replayed = second.events.filter((e) => typeof e.seq === 'number').map((e) => e.seq);
  if (replayed.some((q) => q <= lastSeq)) fail(`replayed seq at or below last_seq ${lastSeq}: ${replayed}`);
  if (replayed.some((q, i) => i > 0 && q <= replayed[i - 1])) fail(`seq not strictly increasing: ${replayed}`);
  const all = [...first.events, ...second.events].filter((e) => e.message_id === typing.message_id);
  const completes = all.filter((e) => e.type === 'complete');
  if (completes.length !== 1) fail(`message 2 has ${completes.length} complete events`);
  const chunks = all.filter((e) => e.type === 'chunk').map((e) => e.content).join('');
  if (chunks !== completes[0].full_response) fail('message 2: chunks differ from full_response');
  if (!completes[0].full_response.startsWith('Reply 2 to "second question" after 1 earlier user and 1 assistant messages.')) {
    fail(`message 2: unexpected answer ${JSON.stringify(completes[0].full_response)}`);
  }

  const third = await turn(second, 'third question');
  const answer3 = second.events.find((e) => e.type === 'complete' && e.message_id === third).full_response;
  if (!answer3.startsWith('Reply 3 to "third question" after 2 earlier user and 2 assistant messages.')) {
    fail(`message 3: unexpected answer ${JSON.stringify(answer3)}`);
  }
  second.ws.close(1000);

  const result = {
    session_id: sessionId, killed: victim, resumed_on: survivor, last_seq: lastSeq,
    replayed_seqs: replayed.length, message2_done_before_kill: doneBeforeKill,
    events_before_kill: first.events.length, first_close_code: first.closed,
  };
  process.stdout.write(`RESULT ${JSON.stringify(result)}\n`, () => process.exit(0));
}

main().catch((err) => fail((err && err.stack) || err));
