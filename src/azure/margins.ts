// How early a connection that logged in with a token (PostgreSQL) or authenticated with one (Redis) must act
// before that token expires. "3 minutes before expiry" cannot hold for a 90-second token: the margin is the
// smaller of 3 minutes and a quarter of the token's lifetime. Pure arithmetic, importing nothing, so the
// kernel's database and redis slices may use it (.dependency-cruiser.cjs lists it with the kernel).

/** The most a connection acts before its token's expiry. */
export const MAX_REFRESH_MARGIN_MS = 180_000

/** Act this long before a token of this lifetime expires: min(3 min, lifetime / 4). */
export function refreshMargin (lifetimeMs: number): number {
  return Math.max(0, Math.min(MAX_REFRESH_MARGIN_MS, lifetimeMs * 0.25))
}

/** A random extra head start, so connections opened together do not all act at once: up to min(30 s, lifetime / 20). */
export function jitter (lifetimeMs: number, random: () => number = Math.random): number {
  return random() * Math.max(0, Math.min(30_000, lifetimeMs * 0.05))
}
