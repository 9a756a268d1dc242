// JWT helpers: the client never verifies a token (the gateway does); it only reads
// `exp` to refresh in time.

/** `exp` of a JWT in milliseconds since the epoch, or undefined when it has none. */
export function expiryOf(token: string): number | undefined {
  const part = token.split('.')[1];
  if (!part) return undefined;
  try {
    const base64 = part.replace(/-/g, '+').replace(/_/g, '/');
    const padded = base64 + '='.repeat((4 - (base64.length % 4)) % 4);
    const json = typeof atob === 'function'
      ? decodeURIComponent(
        Array.from(atob(padded), (c) => `%${c.charCodeAt(0).toString(16).padStart(2, '0')}`).join(''),
      )
      : '';
    const claims = JSON.parse(json) as { exp?: unknown };
    const exp = Number(claims.exp);
    return Number.isFinite(exp) ? exp * 1000 : undefined;
  } catch {
    return undefined;
  }
}
