// The platform's WebSocket and fetch: the browser's, Node 22's global one, or the `ws`
// package on older Node (an optional peer dependency, loaded only when needed).

/** The part of the WHATWG WebSocket the client uses (`ws` implements it too). */
export interface SocketLike {
  readonly readyState: number;
  send(data: string): void;
  close(code?: number, reason?: string): void;
  addEventListener(type: 'open', listener: () => void): void;
  addEventListener(type: 'message', listener: (event: { data: unknown }) => void): void;
  addEventListener(type: 'close', listener: (event: { code: number; reason: string }) => void): void;
  addEventListener(type: 'error', listener: (event: unknown) => void): void;
}

export type SocketFactory = new (url: string, protocols?: string | string[]) => SocketLike;

export const OPEN = 1;

let loaded: Promise<SocketFactory> | undefined;

/** The WebSocket constructor to use: the given one, the global one, or `ws`'s. */
export function webSocketClass(given?: SocketFactory): Promise<SocketFactory> {
  if (given) return Promise.resolve(given);
  const global = (globalThis as { WebSocket?: SocketFactory }).WebSocket;
  if (global) return Promise.resolve(global);
  loaded ??= import('ws').then(
    (mod: { default?: unknown; WebSocket?: unknown }) =>
      (mod.WebSocket ?? mod.default) as SocketFactory,
    () => {
      loaded = undefined;
      throw new Error('No WebSocket in this runtime: install the `ws` package (npm i ws) or pass options.WebSocket.');
    },
  );
  return loaded;
}

/** A frame's text, whatever the implementation hands over. */
export function frameText(data: unknown): string {
  if (typeof data === 'string') return data;
  if (data instanceof ArrayBuffer) return new TextDecoder().decode(data);
  if (ArrayBuffer.isView(data)) return new TextDecoder().decode(data);
  return String(data);
}
