// Thumbnails: their signed URLs and when they are skipped for load.
import { Type, type Static } from '@sinclair/typebox'

export const ThumbnailsEnv = Type.Object({
  /** Signs thumbnail URLs; shared by every instance behind one address. At least 32 characters. */
  URL_SIGNING_KEY: Type.Optional(Type.String({ minLength: 32 })),
  THUMBNAIL_URL_TTL_S: Type.Integer({ minimum: 10, maximum: 86_400, default: 900 }),
  /** Event-loop utilisation (0–1, over the last second) above which thumbnails are skipped; 1: never skipped for load. */
  THUMBNAIL_SKIP_ABOVE_UTILISATION: Type.Number({ minimum: 0, maximum: 1, default: 0.8 }),
  /** low: made by a child process at the lowest CPU priority (nice 19); normal: in the server's own process. */
  THUMBNAIL_PRIORITY: Type.Union([Type.Literal('low'), Type.Literal('normal')], { default: 'low' })
})
export type ThumbnailsEnv = Static<typeof ThumbnailsEnv>

export interface ThumbnailsConfig {
  /** null: each process makes a random one (development; URLs then work only on the instance that signed them). */
  signingKey: Buffer | null
  urlTtlSeconds: number
  skipAboveUtilisation: number
  priority: 'low' | 'normal'
}

export function readThumbnailsConfig (raw: ThumbnailsEnv): ThumbnailsConfig {
  return {
    signingKey: raw.URL_SIGNING_KEY !== undefined ? Buffer.from(raw.URL_SIGNING_KEY) : null,
    urlTtlSeconds: raw.THUMBNAIL_URL_TTL_S,
    skipAboveUtilisation: raw.THUMBNAIL_SKIP_ABOVE_UTILISATION,
    priority: raw.THUMBNAIL_PRIORITY
  }
}
