// Real processes for the client's tests: redis-server on a free loopback port (never
// 6379), the repo's mock-llm, gateways and workers from target/debug (built by
// scripts/test.sh), and a TCP proxy the test controls. Everything started is killed
// when the test process exits.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
export const repo = path.resolve(here, '../../..');
const bin = (name) => path.join(process.env.CHAT_BIN_DIR || path.join(repo, 'target/debug'), name);

const children = new Set();
process.on('exit', () => {
  for (const child of children) {
    try { child.kill('SIGKILL'); } catch { /* already gone */ }
  }
});

export const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

export function freePort() {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.unref();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

/** Resolves once `check()` is truthy (polled), or rejects after `ms`. */
export async function until(what, check, ms = 20000) {
  const deadline = Date.now() + ms;
  for (;;) {
    try {
      const value = await check();
      if (value) return value;
    } catch { /* not yet */ }
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(25);
  }
}

function run(name, command, args, env) {
  const log = [];
  const child = spawn(command, args, { env: { PATH: process.env.PATH, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  children.add(child);
  const keep = (data) => {
    log.push(data.toString());
    if (log.length > 200) log.shift();
  };
  child.stdout.on('data', keep);
  child.stderr.on('data', keep);
  child.on('exit', () => children.delete(child));
  child.logs = () => `--- ${name}\n${log.join('')}`;
  return child;
}

function kill(child, signal = 'SIGKILL') {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    child.once('exit', () => resolve());
    child.kill(signal);
  });
}

async function httpOk(url) {
  const response = await fetch(url);
  return response.ok;
}

function redisPing(port) {
  return new Promise((resolve) => {
    const socket = net.connect(port, '127.0.0.1');
    socket.setTimeout(1000);
    socket.on('connect', () => socket.write('PING\r\n'));
    socket.on('data', (data) => { socket.destroy(); resolve(data.toString().startsWith('+PONG')); });
    socket.on('error', () => resolve(false));
    socket.on('timeout', () => { socket.destroy(); resolve(false); });
  });
}

export class Redis {
  constructor(port, dir) {
    this.port = port;
    this.dir = dir;
    this.url = `redis://127.0.0.1:${port}`;
  }

  static async start() {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'client-redis-'));
    const redis = new Redis(await freePort(), dir);
    await redis.spawn();
    return redis;
  }

  /** Persistent (an append-only file synced on every write), so a restart keeps the
   * sessions and the queue, as a production Redis does. */
  async spawn() {
    this.child = run('redis', 'redis-server', [
      '--port', String(this.port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'yes',
      '--appendfsync', 'always', '--dir', this.dir,
    ], {});
    await until('redis-server', () => redisPing(this.port), 10000);
  }

  async restart(downMs = 500) {
    await kill(this.child);
    await sleep(downMs);
    await this.spawn();
  }

  async stop() {
    await kill(this.child);
    fs.rmSync(this.dir, { recursive: true, force: true });
  }
}

/** A mock LLM, gateways and workers on one Redis. */
export class Cluster {
  static async start({ gateways = 1, workers = 1, tokens = 40, tokenDelayMs = 15, env = {} } = {}) {
    const cluster = new Cluster();
    cluster.redis = await Redis.start();
    cluster.tokens = tokens;
    const mockPort = await freePort();
    cluster.mock = run('mock-llm', bin('mock-llm'), [
      '--port', String(mockPort), '--tokens', String(tokens), '--token-delay-ms', String(tokenDelayMs),
    ], { RUST_LOG: 'warn' });
    cluster.mockUrl = `http://127.0.0.1:${mockPort}`;
    await until('mock-llm', () => httpOk(`${cluster.mockUrl}/health`));
    cluster.env = {
      REDIS_URL: cluster.redis.url,
      KEY_PREFIX: `client-${process.pid}-${Date.now()}`,
      OPENAI_BASE_URL: `${cluster.mockUrl}/v1`,
      LLM_MODEL: 'mock-model',
      RUST_LOG: 'warn',
      REDIS_COMMAND_TIMEOUT_MS: '2000',
      ...env,
    };
    cluster.gateways = [];
    cluster.workers = [];
    for (let i = 0; i < gateways; i += 1) await cluster.addGateway();
    for (let i = 0; i < workers; i += 1) cluster.addWorker();
    return cluster;
  }

  async addGateway(port) {
    port ??= await freePort();
    const child = run(`gateway-${port}`, bin('gateway'), [], {
      ...this.env, CHAT_SERVICE_HOST: '127.0.0.1', CHAT_SERVICE_PORT: String(port), SHUTDOWN_GRACE_SECS: '5',
    });
    const gateway = { port, url: `http://127.0.0.1:${port}`, child };
    await until(`gateway on ${port}`, () => httpOk(`${gateway.url}/livez`), 15000);
    this.gateways.push(gateway);
    return gateway;
  }

  addWorker() {
    const index = this.workers.length;
    const child = run(`worker-${index}`, bin('worker'), [], {
      ...this.env,
      WORKER_HTTP_HOST: '127.0.0.1',
      WORKER_HTTP_PORT: '0',
      WORKER_ID: `client-worker-${index}-${process.pid}`,
      WORKER_CLAIM_LEASE_MS: '1500',
      WORKER_MAX_TRIES: '20',
    });
    this.workers.push(child);
    return child;
  }

  /** The gateway holding `sessionId`'s socket, by its `/status` connections. */
  async holder() {
    for (const gateway of this.gateways) {
      if (gateway.child.exitCode !== null || gateway.child.signalCode !== null) continue;
      const status = await (await fetch(`${gateway.url}/status`)).json();
      if (status.connections > 0) return gateway;
    }
    return undefined;
  }

  kill(gateway) {
    return kill(gateway.child, 'SIGKILL');
  }

  logs() {
    return [this.mock, ...this.gateways.map((g) => g.child), ...this.workers].map((c) => c.logs()).join('\n');
  }

  async stop() {
    await Promise.all([this.mock, ...this.gateways.map((g) => g.child), ...this.workers].map((c) => kill(c)));
    await this.redis.stop();
  }
}

/** A TCP proxy to `target` port that the test can cut: `cut()` drops every
 * connection and refuses new ones; `blackhole()` keeps them but forwards nothing (a
 * cut with no FIN, seen only by a heartbeat); `restore()` ends either. */
export class Proxy {
  static async start(targetPort) {
    const proxy = new Proxy();
    proxy.targetPort = targetPort;
    proxy.mode = 'up';
    proxy.pairs = new Set();
    proxy.accepted = 0;
    proxy.server = net.createServer((client) => proxy.#accept(client));
    proxy.port = await freePort();
    await new Promise((resolve) => proxy.server.listen(proxy.port, '127.0.0.1', resolve));
    proxy.url = `http://127.0.0.1:${proxy.port}`;
    return proxy;
  }

  #accept(client) {
    if (this.mode !== 'up') {
      client.destroy();
      return;
    }
    this.accepted += 1;
    const upstream = net.connect(this.targetPort, '127.0.0.1');
    const pair = { client, upstream };
    this.pairs.add(pair);
    const forward = (from, to) => from.on('data', (data) => { if (this.mode === 'up') to.write(data); });
    forward(client, upstream);
    forward(upstream, client);
    const end = () => { client.destroy(); upstream.destroy(); this.pairs.delete(pair); };
    client.on('close', end).on('error', end);
    upstream.on('close', end).on('error', end);
  }

  cut() {
    this.mode = 'cut';
    for (const { client, upstream } of this.pairs) { client.destroy(); upstream.destroy(); }
    this.pairs.clear();
  }

  blackhole() {
    this.mode = 'blackhole';
  }

  restore() {
    if (this.mode === 'blackhole') this.cut();
    this.mode = 'up';
  }

  close() {
    this.cut();
    this.server.close();
  }
}

/** The mock LLM's answer to the `users`-th user message `text` of a session with
 * `assistants` answers before it (loadtest/src/mock_llm/reply.rs). */
export function mockReply(users, text, assistants, tokens) {
  const base = `Reply ${users} to "${text}" after ${users - 1} earlier user and ${assistants} assistant messages.`;
  const words = base.split(' ').map((w, i) => (i === 0 ? w : ` ${w}`));
  for (let n = 1; words.length < tokens; n += 1) words.push(` w${n}`);
  return words.join('');
}

/** Records a client's answer events, with waits on them. */
export function record(client) {
  const log = { events: [], messages: [], errors: [], reconnects: 0, authenticated: 0 };
  client.on('typing', (meta) => log.events.push({ kind: 'typing', id: meta?.message_id }));
  client.on('chunk', (text, meta) => log.events.push({ kind: 'chunk', text, seq: meta?.seq, id: meta?.message_id }));
  client.on('restarted', (meta) => log.events.push({ kind: 'restarted', id: meta?.message_id }));
  client.on('message', (text, meta) => log.messages.push({ text, ...meta }));
  client.on('error', (error) => log.errors.push(error));
  client.on('reconnected', () => { log.reconnects += 1; });
  client.on('authenticated', () => { log.authenticated += 1; });
  /** The chunks of `id`'s last try (they start over after `restarted`). */
  log.chunksOf = (id) => {
    let chunks = [];
    for (const e of log.events) {
      if (e.id !== id) continue;
      if (e.kind === 'restarted') chunks = [];
      if (e.kind === 'chunk') chunks.push(e);
    }
    return chunks;
  };
  log.chunkCount = () => log.events.filter((e) => e.kind === 'chunk').length;
  log.waitMessages = (n, ms = 30000) => until(`${n} answers (have ${log.messages.length})`, () => log.messages.length >= n, ms);
  log.waitChunks = (n, ms = 30000) => until(`${n} chunks`, () => log.chunkCount() >= n, ms);
  return log;
}

/** Every chunk of the answer once, in order, making up its text. */
export function assertWhole(assert, log, answer, expected) {
  assert.equal(answer.text, expected, 'the complete answer');
  const chunks = log.chunksOf(answer.message_id);
  assert.equal(chunks.map((c) => c.text).join(''), expected, 'the chunks, each once and in order');
  const seqs = chunks.map((c) => c.seq);
  assert.ok(seqs.every((s, i) => i === 0 || s > seqs[i - 1]), `chunk seqs increase: ${seqs}`);
}
