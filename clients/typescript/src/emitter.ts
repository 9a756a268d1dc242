// A small EventEmitter with Node's API (on, once, off, emit, ...), so the same client
// runs in browsers with no dependency. As with Node's, an `error` with no listener
// throws, so a failure is never silently lost.

// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type Listener = (...args: any[]) => void;

export class Emitter {
  #listeners = new Map<string | symbol, Listener[]>();

  on(event: string | symbol, listener: Listener): this {
    const list = this.#listeners.get(event) ?? [];
    list.push(listener);
    this.#listeners.set(event, list);
    return this;
  }

  addListener(event: string | symbol, listener: Listener): this {
    return this.on(event, listener);
  }

  once(event: string | symbol, listener: Listener): this {
    const wrapped: Listener = (...args: unknown[]) => {
      this.off(event, wrapped);
      listener(...args);
    };
    (wrapped as Listener & { listener?: Listener }).listener = listener;
    return this.on(event, wrapped);
  }

  off(event: string | symbol, listener: Listener): this {
    const list = this.#listeners.get(event);
    if (!list) return this;
    const at = list.findIndex(
      (l) => l === listener || (l as Listener & { listener?: Listener }).listener === listener,
    );
    if (at >= 0) list.splice(at, 1);
    if (list.length === 0) this.#listeners.delete(event);
    return this;
  }

  removeListener(event: string | symbol, listener: Listener): this {
    return this.off(event, listener);
  }

  removeAllListeners(event?: string | symbol): this {
    if (event === undefined) this.#listeners.clear();
    else this.#listeners.delete(event);
    return this;
  }

  listenerCount(event: string | symbol): number {
    return this.#listeners.get(event)?.length ?? 0;
  }

  emit(event: string | symbol, ...args: unknown[]): boolean {
    const list = this.#listeners.get(event);
    if (!list || list.length === 0) {
      if (event === 'error') {
        throw args[0] instanceof Error ? args[0] : new Error(`unhandled error event: ${String(args[0])}`);
      }
      return false;
    }
    for (const listener of [...list]) listener(...args);
    return true;
  }
}
