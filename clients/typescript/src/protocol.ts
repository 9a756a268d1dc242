// The gateway's wire protocol (docs/protocol.md), as the client reads it. Every shape
// here is checked against the gateway's served JSON Schema (`/asyncapi.json`) by
// test/schema.test.mjs, through `PROTOCOL_FIELDS` below, which must describe the same
// fields as the types. Unknown fields are ignored, as the protocol asks.

/** Error codes the client knows of; others may come (the type stays open). */
export type KnownErrorCode =
  | 'invalid_request'
  | 'unauthorized'
  | 'not_found'
  | 'session_not_found'
  | 'payload_too_large'
  | 'rate_limited'
  | 'unavailable'
  | 'internal'
  | 'invalid_json'
  | 'unsupported_frame'
  | 'invalid_message'
  | 'empty_message'
  | 'message_too_long'
  | 'too_many_pending'
  | 'budget_exceeded'
  | 'llm_error'
  | 'llm_timeout';

export type ErrorCode = KnownErrorCode | (string & Record<never, never>);

export type Status = 'connected' | 'typing' | 'ready' | 'restarted' | 'authenticated';

export interface StatusEvent {
  type: 'status';
  seq?: number;
  status: Status;
  session_id?: string;
  message_id?: string;
  timestamp: string;
  /** On `connected`: the newest position of the session's event log. */
  last_seq?: number;
  /** On `connected` after a `last_seq` resume: whether every event was replayed. */
  recovered?: boolean;
}

export interface FunctionCalledEvent {
  type: 'function_called';
  seq?: number;
  function_name: string;
  call_id: string;
  message_id?: string;
  timestamp: string;
}

export interface ChunkEvent {
  type: 'chunk';
  seq?: number;
  content: string;
  message_id?: string;
  timestamp: string;
}

export interface CompleteEvent {
  type: 'complete';
  seq?: number;
  full_response: string;
  message_id?: string;
  /** The generation was stopped; `full_response` is what was sent up to the stop. */
  cancelled?: boolean;
  /** The tokens the answer cost, when the LLM provider reported them. */
  usage?: TokenUsage;
  timestamp: string;
}

export interface TokenUsage {
  prompt_tokens: number;
  completion_tokens: number;
}

export interface ErrorEvent {
  type: 'error';
  seq?: number;
  error: string;
  code: ErrorCode;
  message_id?: string;
  retry_after_ms?: number;
  timestamp: string;
}

export interface PongEvent {
  type: 'pong';
}

export type ServerEvent =
  | StatusEvent
  | FunctionCalledEvent
  | ChunkEvent
  | CompleteEvent
  | ErrorEvent
  | PongEvent;

/** Frames the client sends. */
export type ClientFrame =
  | { message: string; client_message_id?: string }
  | { type: 'cancel' }
  | { type: 'ping' }
  | { type: 'auth'; token: string };

/** A stored message of `GET /api/session/{id}/messages`. */
export interface HistoryMessage {
  id: string;
  role: 'user' | 'assistant';
  content: string;
  created_at: string;
  reply_to?: string;
  cancelled?: boolean;
  function_calls?: {
    name: string;
    call_id: string;
    arguments: string;
    result?: unknown;
    round: number;
    index: number;
  }[];
}

export interface HistoryPage {
  session_id: string;
  has_more: boolean;
  messages: HistoryMessage[];
}

export interface SessionInfo {
  session_id: string;
  created_at: string;
  last_activity_at: string;
  message_count: number;
  user_id: string | null;
  status: string;
  protocol: 'stream' | 'simple';
  metadata: Record<string, unknown>;
  last_seq: number;
}

export interface CreatedSession {
  session_id: string;
  websocket_url: string;
  created_at: string;
  status: string;
  protocol: 'stream' | 'simple';
}

type JsonType = 'string' | 'integer' | 'boolean' | 'object';

/** A field as the schema check sees it: its JSON type and whether it is always sent. */
export interface FieldSpec {
  type: JsonType;
  required: boolean;
  /** For enums: the values the client knows (each must be one the schema allows). */
  values?: readonly string[];
}

const STATUSES: readonly Status[] = ['connected', 'typing', 'ready', 'restarted', 'authenticated'];
const ERROR_CODES: readonly KnownErrorCode[] = [
  'invalid_request', 'unauthorized', 'not_found', 'session_not_found', 'payload_too_large',
  'rate_limited', 'unavailable', 'internal', 'invalid_json', 'unsupported_frame',
  'invalid_message', 'empty_message', 'message_too_long', 'too_many_pending', 'budget_exceeded',
  'llm_error', 'llm_timeout',
];

const seq: FieldSpec = { type: 'integer', required: false };
const messageId: FieldSpec = { type: 'string', required: false };
const timestamp: FieldSpec = { type: 'string', required: true };

/** The stream protocol's server events as the types above declare them. */
export const PROTOCOL_FIELDS: Readonly<Record<ServerEvent['type'], Readonly<Record<string, FieldSpec>>>> = {
  status: {
    seq,
    status: { type: 'string', required: true, values: STATUSES },
    session_id: { type: 'string', required: false },
    message_id: messageId,
    timestamp,
    last_seq: { type: 'integer', required: false },
    recovered: { type: 'boolean', required: false },
  },
  function_called: {
    seq,
    function_name: { type: 'string', required: true },
    call_id: { type: 'string', required: false },
    message_id: messageId,
    timestamp,
  },
  chunk: { seq, content: { type: 'string', required: true }, message_id: messageId, timestamp },
  complete: {
    seq,
    full_response: { type: 'string', required: true },
    message_id: messageId,
    cancelled: { type: 'boolean', required: false },
    usage: { type: 'object', required: false },
    timestamp,
  },
  error: {
    seq,
    error: { type: 'string', required: true },
    code: { type: 'string', required: true, values: ERROR_CODES },
    message_id: messageId,
    retry_after_ms: { type: 'integer', required: false },
    timestamp,
  },
  pong: {},
};
