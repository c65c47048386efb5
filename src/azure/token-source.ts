// What a connection (PostgreSQL, Redis) needs from the managed identity: a token for its scope with enough life
// left, told when a new one comes. Types only, importing nothing, so the kernel's database and redis slices may
// depend on it (.dependency-cruiser.cjs lists it with the kernel); src/azure/token-provider.ts implements it.

export interface IssuedToken {
  /** The bearer token: a secret. Never log it, never put it in an error. */
  token: string
  expiresOnMs: number
  /** When this process received it: expiresOnMs - obtainedAtMs is its lifetime, for the margins (margins.ts). */
  obtainedAtMs: number
}

export interface TokenRequest {
  /**
   * Wait for a fresh token when the cached one has this little left (default: the provider's own minimum). The
   * fetch is shared with every other caller; if the new token still has less (a short-lived token), it is returned.
   */
  minValidityMs?: number
}

export interface TokenSource {
  /** The scope the tokens are for, e.g. https://ossrdbms-aad.database.windows.net/.default. */
  readonly scope: string
  /** A token with enough life left; rejects with TokenUnavailableError (no secret in its message) when none can be had. */
  getAccessToken (request?: TokenRequest): Promise<IssuedToken>
  /** Called with each new token (not with the same one handed back again); returns the function that unsubscribes. */
  onToken (listener: (token: IssuedToken) => void): () => void
  /** The newest token while it has not expired, without fetching; undefined otherwise. */
  current (): IssuedToken | undefined
}
