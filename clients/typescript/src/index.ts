export { PipecatChatClient, ChatError } from './client.js';
export type { AnswerMeta, ClientOptions, ConnectionState, ReconnectOptions, TokenSource } from './client.js';
export type * from './protocol.js';
export { PROTOCOL_FIELDS } from './protocol.js';
export type { SocketFactory, SocketLike } from './transport.js';
export { PipecatChatClient as default } from './client.js';
