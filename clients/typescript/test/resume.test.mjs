// The client against real gateways, workers and Redis: the answer in flight survives
// a SIGKILLed gateway, a Redis restart and network cuts, and a resent message is
// answered once.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { PipecatChatClient } from '../dist/index.js';
import { Cluster, Proxy, assertWhole, mockReply, record, sleep, until } from './harness.mjs';

const TOKENS = 40;
let cluster;

before(async () => {
  cluster = await Cluster.start({ gateways: 2, workers: 1, tokens: TOKENS, tokenDelayMs: 25 });
});
after(async () => {
  await cluster?.stop();
});

const fast = { reconnect: { initialDelayMs: 50, maxDelayMs: 500 } };

test('SIGKILL of the gateway holding the socket mid-answer: the answer completes on the other, every chunk once and in order', async (t) => {
  const [a, b] = cluster.gateways;
  const client = new PipecatChatClient(a.url, { ...fast, urls: [b.url] });
  const log = record(client);
  await client.createSession('kill-test');
  await client.connect();
  client.sendMessage('first');
  await log.waitMessages(1);
  client.sendMessage('second');
  await until('the second answer streaming', () => log.messages.length === 1 && log.chunkCount() > TOKENS + 3);
  const holder = await cluster.holder();
  assert.equal(holder, a, 'the socket is on the first gateway');
  await cluster.kill(a);
  // The killed gateway comes back for the next tests, whatever this one finds.
  t.after(async () => {
    cluster.gateways.splice(cluster.gateways.indexOf(a), 1);
    await cluster.addGateway(a.port);
  });
  await log.waitMessages(2);
  assert.ok(log.reconnects >= 1, 'it reconnected');
  assert.equal((await cluster.holder())?.port, b.port, 'now on the other gateway');
  assert.equal(log.messages.length, 2, 'each answer once');
  assertWhole(assert, log, log.messages[0], mockReply(1, 'first', 0, TOKENS));
  assertWhole(assert, log, log.messages[1], mockReply(2, 'second', 1, TOKENS));
  const history = await client.history();
  assert.deepEqual(history.messages.map((m) => m.content), ['first', log.messages[0].text, 'second', log.messages[1].text]);
  assert.deepEqual(log.errors, []);
  client.close();
  t.diagnostic(`reconnects ${log.reconnects}`);
});

test('SIGKILL of the worker mid-answer: the chunks start over after `restarted` and the answer is emitted once', async () => {
  const client = new PipecatChatClient(cluster.gateways[0].url, fast);
  const log = record(client);
  await client.createSession('worker-kill-test');
  await client.connect();
  client.sendMessage('survive a worker');
  await log.waitChunks(5);
  const [worker] = cluster.workers.splice(0, 1);
  worker.kill('SIGKILL');
  cluster.addWorker();
  await log.waitMessages(1, 60000);
  await sleep(300);
  assert.ok(log.events.some((e) => e.kind === 'restarted'), 'the answer was restarted');
  assert.equal(log.messages.length, 1, 'answered once');
  assertWhole(assert, log, log.messages[0], mockReply(1, 'survive a worker', 0, TOKENS));
  client.close();
});

test('Redis restart mid-answer: the answer completes once, whole', async () => {
  const client = new PipecatChatClient(cluster.gateways[0].url, fast);
  const log = record(client);
  await client.createSession('redis-test');
  await client.connect();
  client.sendMessage('through a restart');
  await log.waitChunks(3);
  await cluster.redis.restart(300);
  await log.waitMessages(1, 60000);
  await sleep(300);
  assert.equal(log.messages.length, 1, 'answered once');
  assertWhole(assert, log, log.messages[0], mockReply(1, 'through a restart', 0, TOKENS));
  client.close();
});

test('network cut by a proxy (a reset, then a silent cut seen by the heartbeat): nothing lost or doubled', async () => {
  const proxy = await Proxy.start(cluster.gateways[0].port);
  const client = new PipecatChatClient(proxy.url, { ...fast, heartbeatIntervalMs: 200, heartbeatTimeoutMs: 300 });
  const log = record(client);
  await client.createSession('cut-test');
  await client.connect();

  client.sendMessage('cut one');
  await log.waitChunks(3);
  proxy.cut();
  await sleep(400);
  proxy.restore();
  await log.waitMessages(1);

  client.sendMessage('cut two');
  await until('the second answer streaming', () => log.chunksOf(log.events.at(-1)?.id).length >= 3 && log.messages.length === 1);
  proxy.blackhole();
  await until('the client saw the silent cut', () => client.state === 'reconnecting', 5000);
  proxy.restore();
  await log.waitMessages(2);
  await sleep(300);

  assert.ok(log.reconnects >= 2, `reconnected after each cut (${log.reconnects})`);
  assert.ok(proxy.accepted >= 3, 'new connections through the proxy');
  assert.equal(log.messages.length, 2);
  assertWhole(assert, log, log.messages[0], mockReply(1, 'cut one', 0, TOKENS));
  assertWhole(assert, log, log.messages[1], mockReply(2, 'cut two', 1, TOKENS));
  client.close();
  proxy.close();
});

test('a message accepted but not acknowledged is re-sent after a reconnect and answered once', async () => {
  // No worker yet: the gateway accepts the message, and no `typing` acknowledges it.
  const solo = await Cluster.start({ gateways: 1, workers: 0, tokens: 12, tokenDelayMs: 5 });
  try {
    const proxy = await Proxy.start(solo.gateways[0].port);
    const client = new PipecatChatClient(proxy.url, fast);
    const log = record(client);
    await client.createSession('resend-test');
    await client.connect();
    const id = client.sendMessage('only once please');
    await until('the message stored', async () => (await client.history()).messages.length === 1);
    proxy.cut();
    await sleep(200);
    // Sent while the network is down: queued, sent when it is back.
    const queued = client.sendMessage('sent while cut');
    assert.equal(client.pendingMessages.length, 2);
    proxy.restore();
    await until('reconnected', () => log.reconnects >= 1);
    solo.addWorker();
    await log.waitMessages(2);
    await sleep(500);
    assert.equal(log.messages.length, 2, 'two answers, none twice');
    assert.equal(log.messages[0].text, mockReply(1, 'only once please', 0, 12));
    assert.equal(log.messages[1].text, mockReply(2, 'sent while cut', 1, 12));
    const history = await client.history();
    assert.deepEqual(history.messages.map((m) => m.role), ['user', 'user', 'assistant', 'assistant']);
    assert.deepEqual(client.pendingMessages, []);
    assert.notEqual(id, queued);
    client.close();
    proxy.close();
  } finally {
    await solo.stop();
  }
});
