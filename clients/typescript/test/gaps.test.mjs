// When the gateway no longer retains what a client missed (`recovered: false`), the
// client reads the history and emits the answer it was waiting for, once.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import WebSocket from 'ws';
import { PipecatChatClient } from '../dist/index.js';
import { Cluster, Proxy, mockReply, record, sleep, until } from './harness.mjs';

const TOKENS = 60;
let cluster;

before(async () => {
  // The smallest event log allowed: a whole answer does not fit in it.
  cluster = await Cluster.start({ gateways: 1, workers: 1, tokens: TOKENS, tokenDelayMs: 15, env: { EVENT_LOG_MAX_ENTRIES: '10' } });
});
after(async () => {
  await cluster?.stop();
});

test('events no longer retained: the answer comes from the history, once and in order', async () => {
  const proxy = await Proxy.start(cluster.gateways[0].port);
  const client = new PipecatChatClient(proxy.url, { reconnect: { initialDelayMs: 50, maxDelayMs: 200 } });
  const log = record(client);
  const reconnected = [];
  client.on('reconnected', (info) => reconnected.push(info));
  await client.createSession('gap-test');
  await client.connect();
  client.sendMessage('a long answer');
  await log.waitChunks(2);
  proxy.cut();
  // While the client is away its answer completes, and another socket of the session
  // asks a second question whose answer pushes the first one's events out of the log.
  const other = new WebSocket(`${cluster.gateways[0].url.replace('http', 'ws')}/ws/${client.sessionId}?protocol=stream`);
  const seen = [];
  other.on('message', (data) => seen.push(JSON.parse(data.toString())));
  await new Promise((resolve) => other.on('open', resolve));
  other.send(JSON.stringify({ message: 'another tab' }));
  await until('the other answer', () => seen.filter((e) => e.type === 'complete').length === 2
    || seen.some((e) => e.type === 'complete' && e.full_response.includes('another tab')));
  other.close();
  proxy.restore();
  await log.waitMessages(2);
  await sleep(300);
  assert.equal(reconnected[0]?.recovered, false, 'the gateway said events were lost');
  assert.equal(log.messages.length, 2, 'each answer once');
  assert.equal(log.messages[0].from_history, true, 'the lost answer, from the history');
  assert.equal(log.messages[0].text, mockReply(1, 'a long answer', 0, TOKENS));
  assert.equal(log.messages[1].text, mockReply(2, 'another tab', 1, TOKENS), 'then the retained one');
  assert.deepEqual(client.pendingMessages, []);
  client.close();
  proxy.close();
});
