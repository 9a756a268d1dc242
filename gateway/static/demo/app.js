// Chat gateway demo page: plain JavaScript, no framework, no build step.
//
// Speaks the gateway's REST API and the `stream` WebSocket protocol (docs/protocol.md):
// - the session id comes from ?session=, else localStorage, else POST /api/create-session;
// - history is GET /api/session/{id}/messages, the source of truth after any failure;
// - every session event carries `seq`: events at or below the highest seen are dropped,
//   and a reconnect asks for `last_seq=N` so the server replays only what was missed;
// - streaming bubbles are keyed by `message_id`; `complete` is authoritative.
// For gateways with authentication on, the token (JWT) comes from the page's fragment
// (`/demo#token=<JWT>`: a fragment is never sent to a server, so it is in no access
// log) or, when the gateway answers 401 / 4401, from a prompt. It is removed from the
// address at once (history.replaceState: not in browser history either; an old
// `?token=` is removed the same way), kept in sessionStorage for reloads of this tab,
// and sent as `Authorization: Bearer` on REST and as the `bearer` subprotocol on the
// socket, never in a URL.
(() => {
  'use strict';

  const STORAGE_KEY = 'chat-demo-session';
  const BACKOFF_MIN_MS = 250;
  const BACKOFF_MAX_MS = 5000;
  const PING_EVERY_MS = 25000;
  const HISTORY_LIMIT = 200;
  const GONE = 'The previous session expired or was deleted, so this is a new chat.';

  const $ = (id) => document.getElementById(id);
  const els = {
    list: $('messages'), form: $('composer'), input: $('input'), send: $('send'),
    stop: $('stop'), newChat: $('new-chat'), pill: $('conn'), service: $('service'),
    sessionLabel: $('session-id'),
  };
  const TOKEN_KEY = 'chat-demo-token';
  const params = new URLSearchParams(location.search);
  let token = takeToken();

  // The token of the address, if any, removed from it; else the one of this tab.
  function takeToken() {
    const fragment = new URLSearchParams(location.hash.slice(1));
    const found = fragment.get('token') || params.get('token');
    if (fragment.has('token') || params.has('token')) {
      fragment.delete('token');
      params.delete('token');
      const q = params.toString();
      const h = fragment.toString();
      history.replaceState(null, '', location.pathname + (q ? `?${q}` : '') + (h ? `#${h}` : ''));
    }
    if (found && found.trim()) {
      sessionStorage.setItem(TOKEN_KEY, found.trim());
      return found.trim();
    }
    return sessionStorage.getItem(TOKEN_KEY);
  }

  // Asks the person for a token; false when they gave none.
  function askToken(reason) {
    const entered = window.prompt(`${reason}\nPaste a token (JWT) for this gateway:`);
    if (!entered || !entered.trim()) return false;
    token = entered.trim();
    sessionStorage.setItem(TOKEN_KEY, token);
    return true;
  }

  const state = {
    sessionId: null,
    status: 'connecting',     // connecting | connected | reconnecting | offline
    lastSeq: 0,               // highest `seq` seen in this session
    ws: null,
    everConnected: false,     // this session had a `connected`: reconnects send last_seq
    attempts: 0,              // failed attempts since the last `connected` (backoff)
    epoch: 0,                 // bumped on every session switch; stale async work checks it
    generating: new Set(),    // message_ids between `typing` and `ready`
    bubbles: new Map(),       // message_id -> assistant bubble being (or just) streamed
    counters: { chunks: 0, duplicatesIgnored: 0, connects: 0, reconnects: 0 },
    lastSocketUrl: null,
  };
  let retryTimer = null;
  let pingTimer = null;

  // ---------- rendering ----------

  function keepBottom(fn) {
    const list = els.list;
    const atBottom = list.scrollHeight - list.scrollTop - list.clientHeight < 80;
    const result = fn();
    if (atBottom) list.scrollTop = list.scrollHeight;
    return result;
  }

  function addMessage(role, text, extra = {}) {
    return keepBottom(() => {
      const li = document.createElement('li');
      li.className = `msg ${role}`;
      li.dataset.state = extra.state || 'complete';
      if (extra.id) li.dataset.messageId = extra.id;
      if (extra.replyTo) li.dataset.replyTo = extra.replyTo;
      const bubble = document.createElement('div');
      bubble.className = 'bubble';
      const tools = document.createElement('ul');
      tools.className = 'tools';
      const textEl = document.createElement('div');
      textEl.className = 'text';
      textEl.textContent = text;
      const dots = document.createElement('span');
      dots.className = 'dots';
      dots.setAttribute('aria-label', 'Assistant is typing');
      dots.append(document.createElement('i'), document.createElement('i'), document.createElement('i'));
      const note = document.createElement('div');
      note.className = 'note';
      bubble.append(tools, textEl, dots, note);
      li.append(bubble);
      els.list.append(li);
      return { li, tools, textEl, note, text, done: li.dataset.state !== 'streaming' };
    });
  }

  // One line of a bubble's tool list: `calling` while the answer runs, `called` once
  // it ended (and in history).
  function toolItem(name, callId, how) {
    const li = document.createElement('li');
    li.dataset.name = name;
    if (callId) li.dataset.callId = callId;
    markTool(li, how);
    return li;
  }

  function markTool(li, how) {
    li.dataset.state = how;
    li.textContent = how === 'calling' ? `🔧 calling ${li.dataset.name}…` : `🔧 called ${li.dataset.name}`;
  }

  function addError(text, code) {
    const b = addMessage('error', code ? `${text} (${code})` : text);
    b.li.setAttribute('role', 'alert');
    return b;
  }

  // The assistant bubble for `id`, created (empty, with typing dots) on first use.
  function bubbleFor(id) {
    let b = state.bubbles.get(id);
    if (!b) {
      b = addMessage('assistant', '', { id, state: 'streaming' });
      state.bubbles.set(id, b);
    }
    return b;
  }

  function finalize(id, text, how) {
    const b = state.bubbles.get(id);
    if (!b || b.done) {
      if (!b && text) addMessage('assistant', text, { id, state: how });
      return;
    }
    keepBottom(() => {
      b.done = true;
      b.text = text;
      b.textEl.textContent = text;
      b.li.dataset.state = how;
      for (const tool of b.tools.children) markTool(tool, 'called');
      if (how === 'stopped') b.note.textContent = '(stopped)';
    });
  }

  function renderHistory(messages, hasMore) {
    els.list.replaceChildren();
    state.bubbles.clear();
    state.generating.clear();
    if (hasMore) addMessage('notice', 'Earlier messages are not shown.');
    for (const m of messages) {
      if (m.role !== 'user' && m.role !== 'assistant') continue;
      const b = addMessage(m.role, m.content, { id: m.id, replyTo: m.reply_to });
      for (const call of m.function_calls || []) b.tools.append(toolItem(call.name, call.call_id, 'called'));
    }
    els.list.scrollTop = els.list.scrollHeight;
  }

  function setStatus(status) {
    state.status = status;
    els.pill.dataset.status = status;
    els.pill.textContent = status;
    updateControls();
  }

  function updateControls() {
    const open = state.status === 'connected';
    els.send.disabled = !open;
    els.input.disabled = !open && state.status === 'offline';
    els.input.placeholder = open ? 'Type a message…' : `${state.status}…`;
    els.stop.hidden = state.generating.size === 0;
  }

  // ---------- REST ----------

  async function api(method, path, body, retried) {
    const headers = { Accept: 'application/json' };
    if (body !== undefined) headers['Content-Type'] = 'application/json';
    if (token) headers.Authorization = `Bearer ${token}`;
    const res = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
    const data = await res.json().catch(() => ({}));
    if (res.status === 401 && !retried && askToken(data.message || 'This gateway needs a token.')) {
      return api(method, path, body, true);
    }
    return { status: res.status, ok: res.ok, data };
  }

  function failure(res) {
    return new Error(res.data.message || res.data.error || `HTTP ${res.status}`);
  }

  async function createSession() {
    const res = await api('POST', '/api/create-session', { metadata: { source: 'demo' } });
    if (!res.ok) throw failure(res);
    return res.data.session_id;
  }

  // Picks (or creates) the session, renders its history and opens the socket.
  async function startSession(forceNew, notice) {
    const epoch = ++state.epoch;
    closeSocket();
    state.sessionId = null;
    state.lastSeq = 0;
    state.everConnected = false;
    renderHistory([], false);
    setStatus('connecting');
    let id = forceNew ? null : (params.get('session') || localStorage.getItem(STORAGE_KEY));
    try {
      for (let tries = 0; ; tries++) {
        if (!id) id = await createSession();
        const res = await api('GET', `/api/session/${encodeURIComponent(id)}/messages?limit=${HISTORY_LIMIT}`);
        if (epoch !== state.epoch) return;
        if (res.ok) {
          renderHistory(res.data.messages || [], res.data.has_more);
          if (notice) addMessage('notice', notice);
          break;
        }
        if (res.status !== 404 || tries > 0) throw failure(res);
        id = null; // expired or deleted: start a new one
        notice = notice || GONE;
      }
    } catch (err) {
      if (epoch !== state.epoch) return;
      addError(`Could not reach the gateway: ${err.message}. Retrying…`); // the retry clears it
      setStatus('offline');
      retryTimer = setTimeout(() => startSession(false), backoffDelay());
      return;
    }
    state.sessionId = id;
    localStorage.setItem(STORAGE_KEY, id);
    if (params.has('session') && params.get('session') !== id) {
      params.set('session', id);
      history.replaceState(null, '', `${location.pathname}?${params}`);
    }
    els.sessionLabel.textContent = `Session ${id.slice(0, 8)}.`;
    els.sessionLabel.title = id;
    connect();
  }

  // ---------- WebSocket ----------

  function backoffDelay() {
    const base = Math.min(BACKOFF_MAX_MS, BACKOFF_MIN_MS * 2 ** state.attempts);
    state.attempts += 1;
    return Math.round(base * (0.8 + Math.random() * 0.4)); // ±20 % jitter
  }

  function connect() {
    clearTimeout(retryTimer);
    const q = new URLSearchParams({ protocol: 'stream' });
    if (state.everConnected) q.set('last_seq', String(state.lastSeq));
    const scheme = location.protocol === 'https:' ? 'wss:' : 'ws:';
    const url = `${scheme}//${location.host}/ws/${encodeURIComponent(state.sessionId)}?${q}`;
    state.lastSocketUrl = url;
    setStatus(state.everConnected ? 'reconnecting' : 'connecting');
    const ws = token ? new WebSocket(url, ['bearer', token]) : new WebSocket(url);
    state.ws = ws;
    ws.onmessage = (e) => {
      if (ws !== state.ws || typeof e.data !== 'string') return;
      let ev;
      try { ev = JSON.parse(e.data); } catch { return; }
      onEvent(ev);
    };
    ws.onclose = (e) => { if (ws === state.ws) onClose(e); };
  }

  function closeSocket() {
    clearTimeout(retryTimer);
    clearInterval(pingTimer);
    const ws = state.ws;
    state.ws = null;
    if (ws) ws.close(1000, 'new session');
  }

  function sendFrame(obj) {
    if (!state.ws || state.ws.readyState !== WebSocket.OPEN) return false;
    state.ws.send(JSON.stringify(obj));
    return true;
  }

  function onClose(e) {
    clearInterval(pingTimer);
    state.ws = null;
    if (e.code === 4404) { startSession(true, GONE); return; }
    if (e.code === 4401) {
      if (askToken('The gateway refused the token (missing, invalid or expired).')) { connect(); return; }
      setStatus('offline');
      addError('The gateway refused the connection: a valid token is needed (open the page as /demo#token=…).');
      return;
    }
    setStatus(state.everConnected ? 'reconnecting' : 'connecting');
    let delay;
    if (e.code === 1012 && state.attempts === 0) {
      state.attempts = 1; // the instance is restarting: go now, but back off if it repeats
      delay = 0;
    } else {
      delay = backoffDelay();
    }
    retryTimer = setTimeout(connect, delay);
  }

  function onConnected(ev) {
    const resumed = state.everConnected;
    state.attempts = 0;
    state.counters.connects += 1;
    if (resumed) state.counters.reconnects += 1;
    if (!resumed && typeof ev.last_seq === 'number') {
      // The history just rendered covers everything up to here.
      state.lastSeq = Math.max(state.lastSeq, ev.last_seq);
    }
    state.everConnected = true;
    setStatus('connected');
    clearInterval(pingTimer);
    pingTimer = setInterval(() => sendFrame({ type: 'ping' }), PING_EVERY_MS);
    if (resumed && ev.recovered === false) rereadHistory(ev.last_seq);
  }

  // Events were no longer retained: the history is the truth up to `last_seq`.
  async function rereadHistory(lastSeq) {
    const epoch = state.epoch;
    const res = await api('GET', `/api/session/${encodeURIComponent(state.sessionId)}/messages?limit=${HISTORY_LIMIT}`);
    if (epoch !== state.epoch) return;
    if (res.status === 404) { startSession(true, GONE); return; }
    if (!res.ok) return;
    const live = [...state.bubbles].filter(([, b]) => !b.done);
    renderHistory(res.data.messages || [], res.data.has_more);
    for (const [id, b] of live) { state.bubbles.set(id, b); els.list.append(b.li); }
    if (typeof lastSeq === 'number') state.lastSeq = Math.max(state.lastSeq, lastSeq);
    updateControls();
  }

  function onEvent(ev) {
    if (typeof ev.seq === 'number') {
      if (ev.seq <= state.lastSeq) { state.counters.duplicatesIgnored += 1; return; }
      state.lastSeq = ev.seq;
    }
    const id = ev.message_id || 'current';
    const b = state.bubbles.get(id);
    switch (ev.type) {
      case 'status':
        if (ev.status === 'connected') onConnected(ev);
        else if (ev.status === 'typing') { state.generating.add(id); bubbleFor(id); }
        else if (ev.status === 'restarted' && b && !b.done) {
          // The chunks start over; the tool calls already shown stay (a restarted
          // answer reuses their results).
          b.text = '';
          b.textEl.textContent = '';
        } else if (ev.status === 'ready') {
          if (ev.message_id) state.generating.delete(id); else state.generating.clear();
          const pending = state.bubbles.get(id);
          if (pending && !pending.done && !pending.text) { pending.li.remove(); state.bubbles.delete(id); }
        }
        break;
      case 'function_called': {
        const tb = bubbleFor(id);
        if (tb.done) break;
        if (ev.call_id && tb.tools.querySelector(`[data-call-id="${CSS.escape(ev.call_id)}"]`)) break;
        keepBottom(() => tb.tools.append(toolItem(ev.function_name, ev.call_id, 'calling')));
        break;
      }
      case 'chunk': {
        const cb = bubbleFor(id);
        if (cb.done || typeof ev.content !== 'string') break;
        state.counters.chunks += 1;
        cb.text += ev.content;
        keepBottom(() => { cb.textEl.textContent = cb.text; });
        break;
      }
      case 'complete':
        finalize(id, ev.full_response ?? (b ? b.text : ''), ev.cancelled ? 'stopped' : 'complete');
        break;
      case 'error':
        if (ev.code === 'session_not_found') { startSession(true, GONE); return; }
        if (b && !b.done) {
          if (b.text) finalize(id, b.text, 'failed');
          else { b.li.remove(); state.bubbles.delete(id); }
        }
        addError(ev.error || 'Something went wrong.', ev.code);
        break;
      default: // pong, authenticated and anything newer: nothing to show
    }
    updateControls();
  }

  // ---------- composer ----------

  function uuid() {
    if (crypto.randomUUID) return crypto.randomUUID();
    // Plain-http pages on a non-localhost host are not a secure context: no randomUUID.
    const b = crypto.getRandomValues(new Uint8Array(16));
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    const h = [...b].map((x) => x.toString(16).padStart(2, '0')).join('');
    return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
  }

  function autosize() {
    els.input.style.height = 'auto';
    els.input.style.height = `${Math.min(els.input.scrollHeight, 160)}px`;
  }

  function send() {
    const text = els.input.value;
    if (!text.trim() || state.status !== 'connected') return;
    if (!sendFrame({ message: text, client_message_id: uuid() })) return;
    addMessage('user', text);
    els.list.scrollTop = els.list.scrollHeight;
    els.input.value = '';
    autosize();
  }

  els.form.addEventListener('submit', (e) => { e.preventDefault(); send(); });
  els.input.addEventListener('keydown', (e) => {
    if (e.key === 'Enter' && !e.shiftKey && !e.isComposing) { e.preventDefault(); send(); }
  });
  els.input.addEventListener('input', autosize);
  els.stop.addEventListener('click', () => sendFrame({ type: 'cancel' }));
  els.newChat.addEventListener('click', () => {
    if (params.has('session')) {
      params.delete('session');
      history.replaceState(null, '', location.pathname + (params.toString() ? `?${params}` : ''));
    }
    startSession(true);
  });

  // Names the service in the header (GET / is public even when auth is on).
  api('GET', '/').then((res) => {
    if (res.ok && res.data.service) {
      els.service.textContent = `${res.data.service}${res.data.version ? ` v${res.data.version}` : ''}`;
      els.service.title = els.service.textContent;
    }
  }).catch(() => {});

  window.chatDemo = {
    state,
    // Closes the socket as if the network dropped: the page reconnects with last_seq.
    dropConnection() { if (state.ws) state.ws.close(4000, 'simulated drop'); },
  };

  startSession(false);
})();
