// Chat gateway demo page: plain JavaScript, no framework, no build step.
//
// Speaks the gateway's REST API and the `stream` WebSocket protocol (docs/protocol.md):
// - the session id comes from ?session=, else localStorage, else POST /api/create-session;
// - history is GET /api/session/{id}/messages, the source of truth after any failure;
// - every session event carries `seq`: events at or below the highest seen are dropped,
//   and a reconnect asks for `last_seq=N` so the server replays only what was missed;
// - streaming bubbles are keyed by `message_id`; `complete` is authoritative;
// - a fresh attach (a reload) mid-answer is first sent that answer's events from its
//   `typing` (seq at most `connected.last_seq`): they rebuild its bubble whole, and the
//   history is read again so an answer that completed meanwhile is shown once;
// - answers are Markdown, rendered as DOM nodes (text nodes, never HTML), so nothing
//   the model or the user writes reaches the page as markup;
// - the header names the model answering; "New chat" asks first, and the chats of
//   this browser stay in "Previous chats".
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
  const CHATS_KEY = 'chat-demo-chats';
  const CHATS_KEPT = 20;
  const BACKOFF_MIN_MS = 250;
  const BACKOFF_MAX_MS = 5000;
  const PING_EVERY_MS = 25000;
  const HISTORY_LIMIT = 200;
  const GONE = 'The previous session expired or was deleted, so this is a new chat.';

  const $ = (id) => document.getElementById(id);
  const els = {
    list: $('messages'), form: $('composer'), input: $('input'), send: $('send'),
    stop: $('stop'), newChat: $('new-chat'), pill: $('conn'), service: $('service'),
    sessionLabel: $('session-id'), model: $('model'), previous: $('previous'),
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
    rejoining: false,         // a fresh attach: its first events may replay the answer in progress
    answered: new Set(),      // question ids the rendered history has an answer for
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

  // ---------- Markdown (as DOM nodes only) ----------

  const INLINE = /(`[^`\n]+`)|(\*\*[^*\n]+\*\*)|(\*[^*\s][^*\n]*\*)|(\[[^\]\n]+\]\((https?:\/\/[^\s)]+)\))/;

  // Inline Markdown of one line: `code`, **bold**, *italic*, [text](http(s) link).
  function inline(parent, text) {
    let rest = text;
    while (rest) {
      const m = INLINE.exec(rest);
      if (!m) { parent.append(document.createTextNode(rest)); return; }
      if (m.index > 0) parent.append(document.createTextNode(rest.slice(0, m.index)));
      const token = m[0];
      if (m[1]) {
        const code = document.createElement('code');
        code.textContent = token.slice(1, -1);
        parent.append(code);
      } else if (m[2]) {
        const strong = document.createElement('strong');
        inline(strong, token.slice(2, -2));
        parent.append(strong);
      } else if (m[3]) {
        const em = document.createElement('em');
        inline(em, token.slice(1, -1));
        parent.append(em);
      } else {
        const a = document.createElement('a');
        a.href = m[5];
        a.rel = 'noopener noreferrer nofollow';
        a.target = '_blank';
        a.textContent = token.slice(1, token.indexOf(']('));
        parent.append(a);
      }
      rest = rest.slice(m.index + token.length);
    }
  }

  // Block Markdown: paragraphs, headings, lists, fenced code.
  function markdown(el, text) {
    const blocks = [];
    let para = null;
    let list = null;
    let fence = null;
    const close = () => { para = null; list = null; };
    for (const line of text.split('\n')) {
      if (fence) {
        if (/^\s*```/.test(line)) { fence = null; continue; }
        fence.textContent += (fence.textContent ? '\n' : '') + line;
        continue;
      }
      if (/^\s*```/.test(line)) {
        close();
        const pre = document.createElement('pre');
        fence = document.createElement('code');
        pre.append(fence);
        blocks.push(pre);
        continue;
      }
      if (!line.trim()) { close(); continue; }
      const heading = /^(#{1,6})\s+(.*)$/.exec(line);
      const bullet = /^\s*[-*+]\s+(.*)$/.exec(line);
      const numbered = /^\s*\d+[.)]\s+(.*)$/.exec(line);
      if (heading) {
        close();
        const h = document.createElement(heading[1].length <= 2 ? 'h3' : 'h4');
        inline(h, heading[2]);
        blocks.push(h);
      } else if (bullet || numbered) {
        const tag = bullet ? 'UL' : 'OL';
        if (!list || list.tagName !== tag) {
          para = null;
          list = document.createElement(tag.toLowerCase());
          blocks.push(list);
        }
        const li = document.createElement('li');
        inline(li, (bullet || numbered)[1]);
        list.append(li);
      } else {
        list = null;
        if (!para) { para = document.createElement('p'); blocks.push(para); } else para.append(document.createElement('br'));
        inline(para, line);
      }
    }
    el.replaceChildren(...blocks);
  }

  // A bubble's text: Markdown for answers, plain text for everything else.
  function paint(textEl, role, text) {
    if (role === 'assistant') markdown(textEl, text);
    else textEl.textContent = text;
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
      paint(textEl, role, text);
      const dots = document.createElement('span');
      dots.className = 'dots';
      dots.setAttribute('aria-label', 'Assistant is typing');
      dots.append(document.createElement('i'), document.createElement('i'), document.createElement('i'));
      const note = document.createElement('div');
      note.className = 'note';
      if (li.dataset.state === 'stopped') note.textContent = '(stopped)';
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
    if (state.answered.has(id)) return { done: true, tools: document.createElement('ul') };
    let b = state.bubbles.get(id);
    if (!b) {
      b = addMessage('assistant', '', { id, state: 'streaming' });
      state.bubbles.set(id, b);
    }
    return b;
  }

  function finalize(id, text, how) {
    if (state.answered.has(id)) return; // the history shows it
    const b = state.bubbles.get(id);
    if (!b || b.done) {
      if (!b && text) addMessage('assistant', text, { id, state: how });
      return;
    }
    keepBottom(() => {
      b.done = true;
      b.text = text;
      paint(b.textEl, 'assistant', text);
      b.li.dataset.state = how;
      for (const tool of b.tools.children) markTool(tool, 'called');
      if (how === 'stopped') b.note.textContent = '(stopped)';
    });
  }

  function renderHistory(messages, hasMore) {
    els.list.replaceChildren();
    state.bubbles.clear();
    state.generating.clear();
    state.answered = new Set(messages.filter((m) => m.role === 'assistant' && m.reply_to).map((m) => m.reply_to));
    if (hasMore) addMessage('notice', 'Earlier messages are not shown.');
    for (const m of messages) {
      if (m.role !== 'user' && m.role !== 'assistant') continue;
      const how = m.cancelled ? 'stopped' : 'complete';
      const b = addMessage(m.role, m.content, { id: m.id, replyTo: m.reply_to, state: how });
      for (const call of m.function_calls || []) b.tools.append(toolItem(call.name, call.call_id, 'called'));
    }
    if (state.notice) addMessage('notice', state.notice);
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
  async function startSession(forceNew, notice, chosen) {
    const epoch = ++state.epoch;
    closeSocket();
    state.sessionId = null;
    state.lastSeq = 0;
    state.everConnected = false;
    renderHistory([], false);
    setStatus('connecting');
    let id = forceNew ? null : (chosen || params.get('session') || localStorage.getItem(STORAGE_KEY));
    try {
      for (let tries = 0; ; tries++) {
        if (!id) id = await createSession();
        const res = await api('GET', `/api/session/${encodeURIComponent(id)}/messages?limit=${HISTORY_LIMIT}`);
        if (epoch !== state.epoch) return;
        if (res.ok) {
          state.notice = notice || null;
          renderHistory(res.data.messages || [], res.data.has_more);
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
    renderPrevious();
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
      // The history just rendered covers everything up to here, but an answer in
      // progress, whose events come next (from its start).
      state.lastSeq = Math.max(state.lastSeq, ev.last_seq);
      state.rejoining = true;
    }
    state.everConnected = true;
    setStatus('connected');
    clearInterval(pingTimer);
    pingTimer = setInterval(() => sendFrame({ type: 'ping' }), PING_EVERY_MS);
    // Resumed with a gap (the history is the truth up to `last_seq`), or fresh (an
    // answer may have completed between the history read and this attach): the
    // history is read again. A fresh attach's position is set above, and the replay
    // of the answer in progress comes next with seqs at or below it: the re-read,
    // which may resolve in the middle of that replay, must not move the position
    // past the replay's events (they were being dropped as seen, and the rebuilt
    // bubble showed only the answer's tail).
    if (resumed && ev.recovered === false) rereadHistory(ev.last_seq);
    else if (!resumed) rereadHistory();
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
    for (const [id, b] of live) {
      if (state.answered.has(id)) continue; // completed meanwhile: the history has it
      state.bubbles.set(id, b);
      els.list.append(b.li);
      state.generating.add(id);
    }
    rememberChat(res.data.messages || []);
    if (typeof lastSeq === 'number') state.lastSeq = Math.max(state.lastSeq, lastSeq);
    updateControls();
  }

  function onEvent(ev) {
    if (typeof ev.seq === 'number') {
      // The first event of a fresh attach may start the replay of the answer in progress.
      if (state.rejoining && ev.seq <= state.lastSeq) state.lastSeq = ev.seq - 1;
      state.rejoining = false;
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
          paint(b.textEl, 'assistant', '');
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
        keepBottom(() => { paint(cb.textEl, 'assistant', cb.text); });
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

  // ---------- chats of this browser ----------

  function chats() {
    try {
      const list = JSON.parse(localStorage.getItem(CHATS_KEY) || '[]');
      return Array.isArray(list) ? list.filter((c) => c && typeof c.id === 'string') : [];
    } catch { return []; }
  }

  // Keeps the current chat (titled by its first question) at the top of the list.
  function rememberChat(messages, firstText) {
    if (!state.sessionId) return;
    const list = chats();
    const old = list.find((c) => c.id === state.sessionId);
    const question = (messages || []).find((m) => m.role === 'user');
    const title = (old && old.title) || (question && question.content) || firstText;
    if (!title) return;
    const entry = { id: state.sessionId, title: title.slice(0, 60), at: new Date().toISOString() };
    const next = [entry, ...list.filter((c) => c.id !== state.sessionId)].slice(0, CHATS_KEPT);
    localStorage.setItem(CHATS_KEY, JSON.stringify(next));
    renderPrevious();
  }

  function forgetChat(id) {
    localStorage.setItem(CHATS_KEY, JSON.stringify(chats().filter((c) => c.id !== id)));
    renderPrevious();
  }

  // The "Previous chats" menu: every remembered chat but the current one.
  function renderPrevious() {
    const others = chats().filter((c) => c.id !== state.sessionId);
    const head = document.createElement('option');
    head.value = '';
    head.textContent = `Previous chats (${others.length})`;
    const options = others.map((c) => {
      const o = document.createElement('option');
      o.value = c.id;
      o.textContent = c.title;
      return o;
    });
    els.previous.replaceChildren(head, ...options);
    els.previous.hidden = others.length === 0;
  }

  function hasConversation() {
    return els.list.querySelector('.msg.user') !== null;
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
    rememberChat(null, text);
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
    // The current chat is not lost (it stays under "Previous chats"), but ask first.
    if (hasConversation() && !window.confirm('Start a new chat? This one stays under "Previous chats".')) return;
    if (params.has('session')) {
      params.delete('session');
      history.replaceState(null, '', location.pathname + (params.toString() ? `?${params}` : ''));
    }
    startSession(true);
  });

  els.previous.addEventListener('change', () => {
    const id = els.previous.value;
    if (!id) return;
    if (params.has('session')) {
      params.delete('session');
      history.replaceState(null, '', location.pathname + (params.toString() ? `?${params}` : ''));
    }
    startSession(false, null, id).then(() => {
      if (state.sessionId !== id) forgetChat(id); // expired or deleted since
    });
  });

  // Names the model answering (GET /status; without a token, or refused, the agent of
  // the public /health). Never prompts for a token by itself.
  async function showModel() {
    const status = await api('GET', '/status', undefined, true).catch(() => null);
    let label = null;
    if (status && status.ok) {
      const model = status.data.model || {};
      const name = model.name || (model.demo ? 'built-in demo model' : model.provider);
      const agent = status.data.agent && status.data.agent.name;
      label = [name && `model ${name}`, agent].filter(Boolean).join(' · ');
    } else {
      const health = await api('GET', '/health', undefined, true).catch(() => null);
      if (health && health.data && health.data.agent) label = `agent ${health.data.agent}`;
    }
    if (label) {
      els.model.textContent = label;
      els.model.title = label;
    }
  }
  showModel();

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
