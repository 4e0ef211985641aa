const KEY = "studio.token";

/**
 * The bearer token lives in sessionStorage only: it dies with the tab and is
 * never written to localStorage or a cookie, so no other site can send it.
 */
export class TokenSession {
  constructor(private readonly storage: Storage = sessionStorage) {}

  get token(): string | undefined {
    return this.storage.getItem(KEY) ?? undefined;
  }

  set(token: string): void {
    this.storage.setItem(KEY, token);
  }

  clear(): void {
    this.storage.removeItem(KEY);
  }

  /** Headers for plain HTTP requests (output downloads). */
  headers(): HeadersInit {
    const token = this.token;
    return token ? { authorization: `Bearer ${token}` } : {};
  }
}
