// usePipecatChat: the streaming guide's React hook (same arguments and returned
// fields), on the resuming client, plus the connection state, `isResuming`, `cancel`
// and, with `sessionStorageKey`, a session that survives a page reload (the answer
// in progress included).

import { useCallback, useEffect, useRef, useState } from 'react';
import { type AnswerMeta, type ClientOptions, type ConnectionState, PipecatChatClient } from './client.js';
import type { HistoryMessage } from './protocol.js';

export interface ChatMessage {
  role: 'user' | 'assistant';
  content: string;
  timestamp: string;
  /** The stored message's id (from the history), when known. */
  id?: string;
  /** On answers: the question's id. */
  replyTo?: string;
  /** On answers that were stopped. */
  cancelled?: boolean;
}

export interface FunctionCallInfo {
  function_name: string;
  timestamp: string;
}

export interface UsePipecatChatOptions extends ClientOptions {
  /** Keep the session id in `sessionStorage` under this key: after a reload,
   * `connect()` rejoins it (its history, and the answer in progress) instead of
   * creating a new one. */
  sessionStorageKey?: string;
}

export interface UsePipecatChat {
  isConnected: boolean;
  isTyping: boolean;
  messages: ChatMessage[];
  currentChunk: string;
  functionCalls: FunctionCallInfo[];
  connect: (userId?: string | null, metadata?: Record<string, unknown>) => Promise<void>;
  sendMessage: (text: string) => void;
  disconnect: () => Promise<void>;
  /** Extras */
  connectionState: ConnectionState;
  /** Reconnecting after a drop (the answer goes on where it was). */
  isResuming: boolean;
  cancel: () => Promise<void>;
  sessionId: string | null;
  lastError: Error | null;
  client: PipecatChatClient | null;
}

function storage(): Storage | undefined {
  try {
    return typeof sessionStorage === 'undefined' ? undefined : sessionStorage;
  } catch {
    return undefined;
  }
}

function fromHistory(m: HistoryMessage): ChatMessage {
  const message: ChatMessage = { role: m.role, content: m.content, timestamp: m.created_at, id: m.id };
  if (m.reply_to) message.replyTo = m.reply_to;
  if (m.cancelled) message.cancelled = true;
  return message;
}

/** The history, then what the socket delivered that it does not hold yet. */
function merge(history: ChatMessage[], live: ChatMessage[]): ChatMessage[] {
  const ids = new Set(history.map((m) => m.id).filter(Boolean));
  const answered = new Set(history.map((m) => m.replyTo).filter(Boolean));
  const extra = live.filter((m) => !(m.id && ids.has(m.id)) && !(m.replyTo && answered.has(m.replyTo)));
  return [...history, ...extra];
}

export function usePipecatChat(baseUrl: string, options: UsePipecatChatOptions = {}): UsePipecatChat {
  const [isConnected, setIsConnected] = useState(false);
  const [isTyping, setIsTyping] = useState(false);
  const [messages, setMessages] = useState<ChatMessage[]>([]);
  const [currentChunk, setCurrentChunk] = useState('');
  const [functionCalls, setFunctionCalls] = useState<FunctionCallInfo[]>([]);
  const [connectionState, setConnectionState] = useState<ConnectionState>('idle');
  const [sessionId, setSessionId] = useState<string | null>(null);
  const [lastError, setLastError] = useState<Error | null>(null);
  const clientRef = useRef<PipecatChatClient | null>(null);
  const optionsRef = useRef(options);
  optionsRef.current = options;

  useEffect(() => {
    const client = new PipecatChatClient(baseUrl, optionsRef.current);
    clientRef.current = client;
    client.on('connected', () => { setIsConnected(true); });
    client.on('reconnected', () => { setIsConnected(true); });
    client.on('state', (state: ConnectionState) => { setConnectionState(state); });
    client.on('typing', () => { setIsTyping(true); });
    client.on('function_called', (data: FunctionCallInfo) => {
      setFunctionCalls((prev) => [...prev, { function_name: data.function_name, timestamp: data.timestamp }]);
    });
    client.on('chunk', (text: string) => { setCurrentChunk((prev) => prev + text); });
    // The chunks of a restarted answer start over.
    client.on('restarted', () => { setCurrentChunk(''); });
    client.on('message', (fullMessage: string, meta?: AnswerMeta) => {
      setMessages((prev) => {
        if (meta?.message_id && prev.some((m) => m.replyTo === meta.message_id)) return prev;
        const message: ChatMessage = { role: 'assistant', content: fullMessage, timestamp: new Date().toISOString() };
        if (meta?.message_id) message.replyTo = meta.message_id;
        if (meta?.cancelled) message.cancelled = true;
        return [...prev, message];
      });
      setCurrentChunk('');
      setIsTyping(false);
    });
    client.on('ready', () => { setIsTyping(false); });
    client.on('error', (error: Error) => {
      setLastError(error);
      setIsTyping(false);
    });
    client.on('disconnected', () => { setIsConnected(false); });
    return () => {
      // An unmount closes the socket but keeps a stored session (it is rejoined).
      if (optionsRef.current.sessionStorageKey) client.close();
      else void client.disconnect();
    };
  }, [baseUrl]);

  const connect = useCallback(async (userId: string | null = null, metadata: Record<string, unknown> = {}) => {
    const client = clientRef.current;
    if (!client) throw new Error('Not mounted');
    const key = optionsRef.current.sessionStorageKey;
    const stored = key ? storage()?.getItem(key) : null;
    let rejoined = false;
    if (stored) {
      client.resumeSession(stored);
      try {
        await client.getSessionInfo();
        rejoined = true;
      } catch {
        rejoined = false;
      }
    }
    if (!rejoined) await client.createSession(userId, metadata);
    if (key && client.sessionId) storage()?.setItem(key, client.sessionId);
    setSessionId(client.sessionId);
    await client.connect();
    if (rejoined) {
      // After `connected`: an answer the socket is replaying is not in the history
      // yet, and one that completed since is in both (shown once).
      const page = await client.history({ limit: 200 });
      setMessages((prev) => merge(page.messages.map(fromHistory), prev));
    }
  }, []);

  const sendMessage = useCallback((text: string) => {
    const client = clientRef.current;
    if (!client || !isConnected) throw new Error('Not connected');
    setMessages((prev) => [...prev, { role: 'user', content: text, timestamp: new Date().toISOString() }]);
    client.sendMessage(text);
  }, [isConnected]);

  const disconnect = useCallback(async () => {
    const key = optionsRef.current.sessionStorageKey;
    if (key) storage()?.removeItem(key);
    await clientRef.current?.disconnect();
  }, []);

  const cancel = useCallback(async () => {
    await clientRef.current?.cancel();
  }, []);

  return {
    isConnected,
    isTyping,
    messages,
    currentChunk,
    functionCalls,
    connect,
    sendMessage,
    disconnect,
    connectionState,
    isResuming: connectionState === 'reconnecting',
    cancel,
    sessionId,
    lastError,
    client: clientRef.current,
  };
}
