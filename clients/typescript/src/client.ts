// PipecatChatClient: the streaming guide's client (same constructor, methods and
// events), that keeps the answer in flight across network blips, gateway restarts and
// token expiry. See README.md for what it adds and how the resume works.

import { Emitter } from './emitter.js';
import type {
  ClientFrame,
  CompleteEvent,
  CreatedSession,
  ErrorCode,
  ErrorEvent,
  HistoryMessage,
  HistoryPage,
  ServerEvent,
  SessionInfo,
  StatusEvent,
  TokenUsage,
} from './protocol.js';
import { expiryOf } from './token.js';
import { OPEN, type SocketFactory, type SocketLike, frameText, webSocketClass } from './transport.js';

export type ConnectionState = 'idle' | 'connecting' | 'open' | 'reconnecting' | 'closed';

/** A token, or a callback giving a fresh one (called again before it expires). */
export type TokenSource = string | (() => string | Promise<string>);

export interface ReconnectOptions {
  /** First delay before a reconnect; doubled each failed attempt. Default 250 ms. */
  initialDelayMs?: number;
  /** Longest delay between attempts. Default 10 s. */
  maxDelayMs?: number;
  /** Attempts before giving up (`disconnected`). Default: never give up. */
  maxAttempts?: number;
}

export interface ClientOptions {
  /** More base URLs (other gateways) tried in turn when one fails. */
  urls?: string[];
  /** JWT for the gateway when its authentication is on. */
  token?: TokenSource;
  /** How long before `exp` a callback token is refreshed in-band. Default 30 s. */
  refreshBeforeExpiryMs?: number;
  reconnect?: ReconnectOptions;
  /** A `ping` frame every so often; no answer within `heartbeatTimeoutMs` means the
   * connection is dead (a silent network cut) and it is replaced. Default 15 s; 0: off. */
  heartbeatIntervalMs?: number;
  /** Default: `heartbeatIntervalMs`. */
  heartbeatTimeoutMs?: number;
  /** Longest wait for `connected` after opening a socket. Default 10 s. */
  connectTimeoutMs?: number;
  /** The WebSocket class (default: the global one, else the `ws` package). */
  WebSocket?: SocketFactory;
  /** The fetch function (default: the global one). */
  fetch?: typeof fetch;
}

/** An error of the gateway: `code` is the protocol's error code. */
export class ChatError extends Error {
  readonly code: ErrorCode;
  readonly messageId: string | undefined;
  readonly retryAfterMs: number | undefined;
  readonly status: number | undefined;

  constructor(message: string, code: ErrorCode, extra: { messageId?: string; retryAfterMs?: number; status?: number } = {}) {
    super(message);
    this.name = 'ChatError';
    this.code = code;
    this.messageId = extra.messageId;
    this.retryAfterMs = extra.retryAfterMs;
    this.status = extra.status;
  }
}

/** What comes with `chunk`, `message` and the other answer events (extra arguments
 * the guide's listeners ignore). */
export interface AnswerMeta {
  message_id: string | undefined;
  seq: number | undefined;
  cancelled?: boolean;
  /** On `message`: the tokens the answer cost, when reported. */
  usage?: TokenUsage;
  /** `message` rebuilt from the history after events were no longer retained. */
  from_history?: boolean;
}

interface Pending {
  clientMessageId: string;
  text: string;
  /** The server's id, once `typing` named it (the message is acknowledged). */
  messageId?: string;
}

/** Closes after which reconnecting cannot help. */
const FINAL_CLOSES = new Set([1008, 4404]);
const COMPLETED_KEPT = 256;

let counter = 0;
function clientMessageId(): string {
  const random = (globalThis as { crypto?: { randomUUID?: () => string } }).crypto?.randomUUID?.() ?? `${Date.now().toString(36)}-${Math.random().toString(36).slice(2)}`;
  counter += 1;
  return `c-${random}-${counter}`;
}

function trimSlash(url: string): string {
  return url.replace(/\/+$/, '');
}

export class PipecatChatClient extends Emitter {
  baseUrl: string;
  sessionId: string | null = null;
  ws: SocketLike | null = null;
  isConnected = false;

  readonly #options: ClientOptions;
  readonly #urls: string[];
  #urlIndex = 0;
  #state: ConnectionState = 'idle';
  /** Highest `seq` handled; sent as `last_seq` on a reconnect. */
  #cursor: number | undefined;
  /** Per socket: the generation, so a replaced socket's late events are ignored. */
  #generation = 0;
  #socketFresh = false;
  #replayUntil = 0;
  #eventsOnSocket = 0;
  #everConnected = false;
  #stopped = true;
  #attempts = 0;
  #pending: Pending[] = [];
  #completed: string[] = [];
  #answer: { messageId: string; text: string } | undefined;
  #token: string | undefined;
  #forceTokenRefresh = false;
  #timers = new Set<ReturnType<typeof setTimeout>>();
  #heartbeat: ReturnType<typeof setInterval> | undefined;
  #lastHeard = 0;
  /** The error a socket was refused with (sent before its close, never `connected`). */
  #refusal: ChatError | undefined;
  /** Events held while the history is read after a gap, so answers stay in order. */
  #holding: ServerEvent[] | undefined;
  #firstConnect: { resolve: () => void; reject: (error: Error) => void; tried: number } | undefined;

  constructor(baseUrl: string, options: ClientOptions = {}) {
    super();
    this.baseUrl = trimSlash(baseUrl);
    this.#options = options;
    this.#urls = [this.baseUrl, ...(options.urls ?? []).map(trimSlash).filter((u) => u !== this.baseUrl)];
  }

  /** `idle`, `connecting`, `open`, `reconnecting` or `closed`. */
  get state(): ConnectionState {
    return this.#state;
  }

  /** The newest `seq` handled (what a reconnect resumes from). */
  get lastSeq(): number | undefined {
    return this.#cursor;
  }

  /** The answer being streamed: its message id and the text so far. */
  get currentAnswer(): { messageId: string; text: string } | undefined {
    return this.#answer ? { ...this.#answer } : undefined;
  }

  /** Messages sent and not answered yet (re-sent after a reconnect until acknowledged). */
  get pendingMessages(): { clientMessageId: string; text: string; messageId?: string }[] {
    return this.#pending.map((p) => ({ ...p }));
  }

  /**
   * Create a new chat session
   * @returns the session id
   */
  async createSession(userId: string | null = null, metadata: Record<string, unknown> = {}): Promise<string> {
    const created = await this.#rest<CreatedSession>('POST', '/api/create-session', { user_id: userId, metadata });
    this.resumeSession(created.session_id);
    return created.session_id;
  }

  /** Use an existing session (e.g. after a page reload); `connect()` then attaches to
   * it and gets the answer in progress, if any, whole. */
  resumeSession(sessionId: string): void {
    if (sessionId !== this.sessionId) {
      this.sessionId = sessionId;
      this.#cursor = undefined;
      this.#pending = [];
      this.#completed = [];
      this.#answer = undefined;
    }
  }

  /** Opens the socket; resolves at the gateway's `connected`. After that the client
   * reconnects by itself until `disconnect()` or `close()`. */
  connect(): Promise<void> {
    if (!this.sessionId) {
      return Promise.reject(new Error('No session ID. Call createSession() first.'));
    }
    if (!this.#stopped) {
      return this.#everConnected && this.isConnected ? Promise.resolve() : new Promise((resolve, reject) => {
        const onConnected = (): void => { this.off('disconnected', onGone); resolve(); };
        const onGone = (): void => { this.off('connected', onConnected); this.off('reconnected', onConnected); reject(new Error('disconnected')); };
        this.once('connected', onConnected).once('reconnected', onConnected).once('disconnected', onGone);
      });
    }
    this.#stopped = false;
    this.#everConnected = false;
    this.#attempts = 0;
    return new Promise((resolve, reject) => {
      this.#firstConnect = { resolve, reject, tried: 0 };
      this.#setState('connecting');
      void this.#open();
    });
  }

  /**
   * Send a message to the AI. Returns its `client_message_id`: the message is re-sent
   * after a reconnect until the gateway acknowledges it, and answered once.
   */
  sendMessage(text: string): string {
    if (this.#stopped || !this.sessionId || (!this.#everConnected && !this.isConnected)) {
      throw new Error('WebSocket not connected');
    }
    const pending: Pending = { clientMessageId: clientMessageId(), text };
    this.#pending.push(pending);
    if (this.isConnected) this.#sendFrame({ message: text, client_message_id: pending.clientMessageId });
    return pending.clientMessageId;
  }

  /** Stops the answer in progress (on the socket, or over REST while reconnecting). */
  async cancel(): Promise<void> {
    if (this.isConnected && this.#sendFrame({ type: 'cancel' })) return;
    if (!this.sessionId) throw new Error('No active session');
    await this.#rest('POST', `/api/session/${encodeURIComponent(this.sessionId)}/cancel`);
  }

  /** The session's stored messages, oldest first. */
  async history(options: { limit?: number; before?: string } = {}): Promise<HistoryPage> {
    if (!this.sessionId) throw new Error('No active session');
    const query = new URLSearchParams();
    if (options.limit !== undefined) query.set('limit', String(options.limit));
    if (options.before !== undefined) query.set('before', options.before);
    const suffix = query.size > 0 ? `?${query.toString()}` : '';
    return this.#rest<HistoryPage>('GET', `/api/session/${encodeURIComponent(this.sessionId)}/messages${suffix}`);
  }

  /**
   * Get session information
   */
  async getSessionInfo(): Promise<SessionInfo> {
    if (!this.sessionId) throw new Error('No active session');
    return this.#rest<SessionInfo>('GET', `/api/session/${encodeURIComponent(this.sessionId)}/info`);
  }

  /** Closes the socket and stops reconnecting; the session stays (resume it later). */
  close(): void {
    this.#stop();
  }

  /**
   * Close session and cleanup (as the guide's client: the session is deleted)
   */
  async disconnect(): Promise<void> {
    const sessionId = this.sessionId;
    this.#stop();
    if (sessionId) {
      try {
        await this.#rest('DELETE', `/api/session/${encodeURIComponent(sessionId)}`);
      } catch {
        // Already gone, or unreachable: the idle TTL removes it.
      }
    }
    this.sessionId = null;
    this.isConnected = false;
  }

  // -------------------------------------------------------------------------------
  // The socket

  async #open(): Promise<void> {
    if (this.#stopped || !this.sessionId) return;
    const generation = ++this.#generation;
    let socket: SocketLike;
    try {
      const WebSocketClass = await webSocketClass(this.#options.WebSocket);
      const token = await this.#currentToken(this.#forceTokenRefresh);
      this.#forceTokenRefresh = false;
      if (generation !== this.#generation || this.#isStopped()) return;
      const base = this.#urls[this.#urlIndex % this.#urls.length] ?? this.baseUrl;
      const query = new URLSearchParams({ protocol: 'stream' });
      if (this.#cursor !== undefined) query.set('last_seq', String(this.#cursor));
      const url = `${base.replace(/^http/, 'ws')}/ws/${encodeURIComponent(this.sessionId)}?${query.toString()}`;
      socket = token ? new WebSocketClass(url, ['bearer', token]) : new WebSocketClass(url);
    } catch (error) {
      this.#onClosed(generation, 1006, error instanceof Error ? error.message : String(error));
      return;
    }
    this.ws = socket;
    this.#holding = undefined;
    this.#socketFresh = this.#cursor === undefined;
    this.#eventsOnSocket = 0;
    const connectTimeout = this.#later(this.#options.connectTimeoutMs ?? 10_000, () => {
      if (generation === this.#generation && !this.isConnected) this.#abandon(generation, 'no connected event in time');
    });
    socket.addEventListener('message', (event) => {
      if (generation !== this.#generation) return;
      this.#lastHeard = Date.now();
      let parsed: ServerEvent;
      try {
        parsed = JSON.parse(frameText(event.data)) as ServerEvent;
      } catch {
        return;
      }
      if (parsed.type === 'status' && parsed.status === 'connected') {
        clearTimeout(connectTimeout);
        this.#timers.delete(connectTimeout);
      }
      this.#onEvent(parsed);
    });
    socket.addEventListener('close', (event) => {
      clearTimeout(connectTimeout);
      this.#timers.delete(connectTimeout);
      this.#onClosed(generation, event.code, event.reason);
    });
    socket.addEventListener('error', () => {
      // `close` follows and decides.
    });
  }

  /** Gives up on a socket that is silent (a cut that sent no FIN) and replaces it. */
  #abandon(generation: number, reason: string): void {
    const socket = this.ws;
    if (socket) {
      const terminate = (socket as { terminate?: () => void }).terminate;
      try {
        if (typeof terminate === 'function') terminate.call(socket);
        else socket.close(4000, reason);
      } catch {
        // Closing a broken socket may throw; it is dropped either way.
      }
    }
    this.#onClosed(generation, 1006, reason);
  }

  #onClosed(generation: number, code: number, reason: string): void {
    if (generation !== this.#generation) return;
    this.#generation += 1;
    const refusal = this.#refusal;
    this.#refusal = undefined;
    const wasConnected = this.isConnected;
    this.ws = null;
    this.isConnected = false;
    this.#stopHeartbeat();
    if (this.#stopped) {
      if (wasConnected || this.#state !== 'closed') this.#finish();
      return;
    }
    if (FINAL_CLOSES.has(code) || (code === 4401 && typeof this.#options.token !== 'function' && this.#everConnected)) {
      const error = new ChatError(
        `${refusal?.message ?? (code === 4404 ? 'The session no longer exists.' : 'The gateway refused the socket.')} (close ${code})`,
        refusal?.code ?? (code === 4404 ? 'session_not_found' : code === 4401 ? 'unauthorized' : 'invalid_request'),
      );
      this.#fail(error);
      return;
    }
    if (code === 4401) this.#forceTokenRefresh = true;
    const first = this.#firstConnect;
    if (first && !this.#everConnected) {
      // The first connect tries each URL once, then fails as the guide's does.
      first.tried += 1;
      if (first.tried >= this.#urls.length) {
        const why = `close ${code}${reason ? ` ${reason}` : ''}`;
        this.#fail(refusal
          ? new ChatError(`${refusal.message} (${why})`, refusal.code)
          : new Error(`Could not connect (${why}).`));
        return;
      }
      this.#urlIndex += 1;
      void this.#open();
      return;
    }
    const max = this.#options.reconnect?.maxAttempts ?? Number.POSITIVE_INFINITY;
    if (this.#attempts >= max) {
      this.#fail(new Error(`Gave up reconnecting after ${this.#attempts} attempts.`));
      return;
    }
    const initial = this.#options.reconnect?.initialDelayMs ?? 250;
    const ceiling = this.#options.reconnect?.maxDelayMs ?? 10_000;
    // Exponential backoff with jitter (half to all of the step), so clients of a
    // restarted gateway do not all come back at once.
    const step = Math.min(ceiling, initial * 2 ** this.#attempts);
    const delayMs = Math.round(step / 2 + (Math.random() * step) / 2);
    this.#attempts += 1;
    this.#urlIndex += 1;
    this.#setState('reconnecting');
    this.emit('reconnecting', { attempt: this.#attempts, delayMs, code, reason });
    this.#later(delayMs, () => void this.#open());
  }

  /** Read through a method: it changes while `#open` awaits. */
  #isStopped(): boolean {
    return this.#stopped;
  }

  #fail(error: Error): void {
    const first = this.#firstConnect;
    this.#firstConnect = undefined;
    this.#stopped = true;
    if (this.listenerCount('error') > 0) this.emit('error', error);
    first?.reject(error);
    this.#finish();
  }

  #stop(): void {
    this.#stopped = true;
    this.#clearTimers();
    this.#stopHeartbeat();
    const socket = this.ws;
    const wasOpen = this.ws !== null || this.#state === 'reconnecting';
    this.#generation += 1;
    this.ws = null;
    this.isConnected = false;
    this.#firstConnect?.reject(new Error('closed'));
    this.#firstConnect = undefined;
    if (socket) {
      try {
        socket.close(1000, 'client closed');
      } catch {
        // Not open yet: dropped anyway.
      }
    }
    if (wasOpen) this.#finish();
  }

  #finish(): void {
    this.#clearTimers();
    this.#setState('closed');
    this.emit('disconnected');
  }

  #setState(state: ConnectionState): void {
    if (state === this.#state) return;
    this.#state = state;
    this.emit('state', state);
  }

  #sendFrame(frame: ClientFrame): boolean {
    const socket = this.ws;
    if (!socket || socket.readyState !== OPEN) return false;
    try {
      socket.send(JSON.stringify(frame));
      return true;
    } catch {
      return false;
    }
  }

  // -------------------------------------------------------------------------------
  // Events

  #onEvent(event: ServerEvent): void {
    if (event.type === 'pong') return;
    if (event.type === 'status' && event.status === 'connected') {
      this.#onConnected(event);
      return;
    }
    const seq = 'seq' in event ? event.seq : undefined;
    if (seq === undefined) {
      this.#onReply(event);
      return;
    }
    if (this.#holding) {
      this.#holding.push(event);
      return;
    }
    // A fresh socket first gets the answer in progress from its start (seqs at most
    // `connected.last_seq`): its first event sets where this client is.
    if (this.#socketFresh && this.#eventsOnSocket === 0 && seq <= this.#replayUntil) {
      this.#cursor = seq - 1;
    }
    this.#eventsOnSocket += 1;
    if (this.#cursor !== undefined && seq <= this.#cursor) return; // already handled
    this.#cursor = seq;
    this.#dispatch(event);
  }

  #onConnected(event: StatusEvent): void {
    const lastSeq = event.last_seq ?? 0;
    if (this.#socketFresh) {
      this.#cursor = lastSeq;
      this.#replayUntil = lastSeq;
    }
    this.isConnected = true;
    this.#attempts = 0;
    this.#setState('open');
    this.#startHeartbeat();
    this.#scheduleRefresh();
    const first = !this.#everConnected;
    this.#everConnected = true;
    if (event.recovered === false) {
      // What the history says comes first, then the events retained after the gap.
      this.#holding = [];
      const generation = this.#generation;
      void this.#resync().finally(() => {
        const held = this.#holding ?? [];
        this.#holding = undefined;
        if (generation === this.#generation) for (const e of held) this.#onEvent(e);
      });
    }
    // Messages never acknowledged are sent again: the gateway answers each
    // `client_message_id` once, so one that did arrive is not answered twice.
    for (const pending of this.#pending) {
      if (!pending.messageId) this.#sendFrame({ message: pending.text, client_message_id: pending.clientMessageId });
    }
    if (first) {
      const connect = this.#firstConnect;
      this.#firstConnect = undefined;
      this.emit('connected');
      connect?.resolve();
    } else {
      this.emit('reconnected', { last_seq: lastSeq, recovered: event.recovered });
    }
  }

  /** Per-socket replies (no `seq`). */
  #onReply(event: Exclude<ServerEvent, { type: 'pong' }>): void {
    if (event.type === 'status' && event.status === 'authenticated') {
      this.emit('authenticated');
      this.#scheduleRefresh();
      return;
    }
    if (event.type !== 'error') return;
    if (this.isConnected) this.emit('error', this.#errorOf(event));
    else this.#refusal = this.#errorOf(event);
  }

  #dispatch(event: Exclude<ServerEvent, { type: 'pong' }>): void {
    const messageId = event.message_id;
    const meta: AnswerMeta = { message_id: messageId, seq: 'seq' in event ? event.seq : undefined };
    switch (event.type) {
      case 'status':
        if (event.status === 'typing' && messageId) {
          this.#acknowledge(messageId);
          if (this.#answer?.messageId !== messageId) this.#answer = { messageId, text: '' };
          this.emit('typing', meta);
        } else if (event.status === 'ready') {
          this.emit('ready', meta);
        } else if (event.status === 'restarted') {
          // The chunks start over: what was shown of this answer is dropped.
          if (messageId && this.#answer?.messageId === messageId) this.#answer.text = '';
          this.emit('restarted', meta);
        }
        break;
      case 'function_called':
        this.emit('function_called', {
          function_name: event.function_name,
          timestamp: event.timestamp,
          call_id: event.call_id,
          message_id: messageId,
        });
        break;
      case 'chunk':
        if (messageId && this.#answer?.messageId !== messageId) this.#answer = { messageId, text: '' };
        if (this.#answer) this.#answer.text += event.content;
        this.emit('chunk', event.content, meta);
        break;
      case 'complete':
        this.#answered(messageId, event);
        break;
      case 'error':
        this.#answered(messageId, undefined);
        this.emit('error', this.#errorOf(event));
        break;
    }
  }

  /** `typing` names the oldest message sent and not yet acknowledged. */
  #acknowledge(messageId: string): void {
    if (this.#completed.includes(messageId) || this.#pending.some((p) => p.messageId === messageId)) return;
    const oldest = this.#pending.find((p) => !p.messageId);
    if (oldest) oldest.messageId = messageId;
  }

  #answered(messageId: string | undefined, complete: CompleteEvent | undefined, fromHistory = false): void {
    if (messageId) {
      if (this.#completed.includes(messageId)) return;
      this.#completed.push(messageId);
      if (this.#completed.length > COMPLETED_KEPT) this.#completed.shift();
    }
    let at = this.#pending.findIndex((p) => p.messageId === messageId);
    if (at < 0 && messageId) at = this.#pending.findIndex((p) => !p.messageId);
    if (at >= 0) this.#pending.splice(at, 1);
    if (!messageId || this.#answer?.messageId === messageId) this.#answer = undefined;
    if (complete) {
      const meta: AnswerMeta = { message_id: messageId, seq: complete.seq, cancelled: complete.cancelled === true };
      if (complete.usage) meta.usage = complete.usage;
      if (fromHistory) meta.from_history = true;
      this.emit('message', complete.full_response, meta);
    }
  }

  /** Some events were no longer retained: what they said is read from the history.
   * Each message this client waits for gets its stored answer, if it has one. */
  async #resync(): Promise<void> {
    let page: HistoryPage;
    try {
      page = await this.history({ limit: 200 });
    } catch {
      return;
    }
    const messages = page.messages;
    const answers = new Map<string, HistoryMessage>();
    for (const m of messages) if (m.role === 'assistant' && m.reply_to) answers.set(m.reply_to, m);
    // Messages never acknowledged are matched to stored questions by their text.
    const claimed = new Set(this.#pending.map((p) => p.messageId).filter(Boolean));
    for (const pending of this.#pending) {
      if (pending.messageId) continue;
      const question = messages.find((m) => m.role === 'user' && m.content === pending.text && !claimed.has(m.id));
      if (question) {
        pending.messageId = question.id;
        claimed.add(question.id);
      }
    }
    const waiting = new Set(this.#pending.map((p) => p.messageId).filter((id): id is string => !!id));
    if (this.#answer) waiting.add(this.#answer.messageId);
    for (const id of waiting) {
      const answer = answers.get(id);
      if (!answer) continue;
      const complete: CompleteEvent = {
        type: 'complete',
        full_response: answer.content,
        message_id: id,
        cancelled: answer.cancelled === true,
        timestamp: answer.created_at,
      };
      this.#answered(id, complete, true);
    }
  }

  #errorOf(event: ErrorEvent): ChatError {
    const extra: { messageId?: string; retryAfterMs?: number } = {};
    if (event.message_id !== undefined) extra.messageId = event.message_id;
    if (event.retry_after_ms !== undefined) extra.retryAfterMs = event.retry_after_ms;
    return new ChatError(event.error, event.code, extra);
  }

  // -------------------------------------------------------------------------------
  // Heartbeat, token, timers

  #startHeartbeat(): void {
    this.#stopHeartbeat();
    const interval = this.#options.heartbeatIntervalMs ?? 15_000;
    if (interval <= 0) return;
    const timeout = this.#options.heartbeatTimeoutMs ?? interval;
    const generation = this.#generation;
    this.#lastHeard = Date.now();
    this.#heartbeat = setInterval(() => {
      if (generation !== this.#generation) return;
      if (Date.now() - this.#lastHeard > interval + timeout) {
        this.#abandon(generation, 'no answer to pings');
        return;
      }
      this.#sendFrame({ type: 'ping' });
    }, interval);
    (this.#heartbeat as { unref?: () => void }).unref?.();
  }

  #stopHeartbeat(): void {
    if (this.#heartbeat !== undefined) clearInterval(this.#heartbeat);
    this.#heartbeat = undefined;
  }

  async #currentToken(forceRefresh = false): Promise<string | undefined> {
    const source = this.#options.token;
    if (source === undefined) return undefined;
    if (typeof source === 'string') return source;
    const expiry = this.#token ? expiryOf(this.#token) : undefined;
    const margin = this.#options.refreshBeforeExpiryMs ?? 30_000;
    if (forceRefresh || !this.#token || (expiry !== undefined && expiry - Date.now() <= margin)) {
      this.#token = await source();
    }
    return this.#token;
  }

  /** A callback token is refreshed in-band (`{"type":"auth"}`) before it expires. */
  #scheduleRefresh(): void {
    if (typeof this.#options.token !== 'function' || !this.#token) return;
    const expiry = expiryOf(this.#token);
    if (expiry === undefined) return;
    const margin = this.#options.refreshBeforeExpiryMs ?? 30_000;
    const generation = this.#generation;
    const delay = Math.max(0, expiry - margin - Date.now());
    this.#later(delay, () => {
      if (generation !== this.#generation || !this.isConnected) return;
      void this.#currentToken(true).then((token) => {
        if (token && generation === this.#generation) this.#sendFrame({ type: 'auth', token });
      }, (error: unknown) => {
        if (this.listenerCount('error') > 0) this.emit('error', error instanceof Error ? error : new Error(String(error)));
      });
    });
  }

  #later(ms: number, run: () => void): ReturnType<typeof setTimeout> {
    const timer = setTimeout(() => {
      this.#timers.delete(timer);
      run();
    }, ms);
    this.#timers.add(timer);
    return timer;
  }

  #clearTimers(): void {
    for (const timer of this.#timers) clearTimeout(timer);
    this.#timers.clear();
  }

  // -------------------------------------------------------------------------------
  // REST

  async #rest<T>(method: string, path: string, body?: unknown): Promise<T> {
    const doFetch = this.#options.fetch ?? globalThis.fetch.bind(globalThis);
    let lastError: unknown;
    // Each base URL in turn, starting with the one the socket uses.
    for (let i = 0; i < this.#urls.length; i += 1) {
      const base = this.#urls[(this.#urlIndex + i) % this.#urls.length] ?? this.baseUrl;
      const headers: Record<string, string> = {};
      const token = await this.#currentToken();
      if (token) headers.authorization = `Bearer ${token}`;
      const init: RequestInit = { method, headers };
      if (body !== undefined) {
        headers['content-type'] = 'application/json';
        init.body = JSON.stringify(body);
      }
      let response: Response;
      try {
        response = await doFetch(`${base}${path}`, init);
      } catch (error) {
        lastError = error;
        continue;
      }
      const text = await response.text();
      let json: unknown;
      try {
        json = text ? JSON.parse(text) : undefined;
      } catch {
        json = undefined;
      }
      if (!response.ok) {
        const detail = json as { error?: string; message?: string } | undefined;
        throw new ChatError(
          detail?.message ?? `Request failed with status code ${response.status}`,
          detail?.error ?? 'internal',
          { status: response.status },
        );
      }
      return json as T;
    }
    throw lastError instanceof Error ? lastError : new Error(String(lastError));
  }
}
