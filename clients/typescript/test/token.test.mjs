// Token refresh: with authentication on, a callback token is sent by subprotocol and
// refreshed in-band before it expires, so the socket outlives every single token.
import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import { after, before, test } from 'node:test';
import { PipecatChatClient } from '../dist/index.js';
import { Cluster, mockReply, record, sleep } from './harness.mjs';

const SECRET = 'client-test-secret-0123456789abcdef';
let cluster;

function sign(claims) {
  const b64 = (value) => Buffer.from(JSON.stringify(value)).toString('base64url');
  const body = `${b64({ alg: 'HS256', typ: 'JWT' })}.${b64(claims)}`;
  return `${body}.${createHmac('sha256', SECRET).update(body).digest('base64url')}`;
}

before(async () => {
  cluster = await Cluster.start({ gateways: 1, workers: 1, tokens: 10, tokenDelayMs: 5, env: { JWT_SECRET: SECRET } });
});
after(async () => {
  await cluster?.stop();
});

test('a callback token is refreshed in-band before it expires: one socket outlives three tokens', async () => {
  const issued = [];
  // Each token lives 3 s; the client refreshes 2 s before expiry.
  const token = () => {
    const value = sign({ sub: 'token-user', exp: Math.floor(Date.now() / 1000) + 3 });
    issued.push(value);
    return value;
  };
  const client = new PipecatChatClient(cluster.gateways[0].url, { token, refreshBeforeExpiryMs: 2000 });
  const log = record(client);
  const closes = [];
  client.on('reconnecting', (info) => closes.push(info.code));
  await client.createSession();
  assert.equal((await client.getSessionInfo()).user_id, 'token-user', 'REST carries the token');
  await client.connect();
  client.sendMessage('before');
  await log.waitMessages(1);
  // Past the first two tokens' expiry.
  await sleep(4500);
  client.sendMessage('after');
  await log.waitMessages(2);
  assert.ok(issued.length >= 3, `tokens issued: ${issued.length}`);
  assert.ok(log.authenticated >= 2, `refreshed in-band: ${log.authenticated}`);
  assert.deepEqual(closes, [], 'the socket was never dropped');
  assert.equal(log.reconnects, 0);
  assert.equal(log.messages[1].text, mockReply(2, 'after', 1, 10));
  client.close();
});

test('a static token that the gateway refuses fails connect() with the close code', async () => {
  const client = new PipecatChatClient(cluster.gateways[0].url, { token: sign({ sub: 'x', exp: 1 }) });
  client.resumeSession('never-created');
  await assert.rejects(client.connect(), /4401/);
});
