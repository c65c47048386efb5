// Thumbnails' settings (read from the environment with history's today: URL_SIGNING_KEY, THUMBNAIL_URL_TTL_S,
// THUMBNAIL_SKIP_ABOVE_UTILISATION; see src/history/config.ts).
export interface ThumbnailsConfig {
  /** null: each process makes a random one (development; URLs then work only on the instance that signed them). */
  signingKey: Buffer | null
  urlTtlSeconds: number
  skipAboveUtilisation: number
}
