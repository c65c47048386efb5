// What other features see of thumbnails (types only): `app.thumbnails`. Import it with `import type`.
import type { FastifyRequest } from 'fastify'
import type { ThumbnailMaker } from './maker.ts'
import type { UrlSigner } from './signing.ts'
import type { ThumbnailProcess } from './low-priority.ts'

export interface Thumbnails {
  maker: ThumbnailMaker
  signer: UrlSigner
  /** The low-priority process that makes them (started by the first one). */
  process: Pick<ThumbnailProcess, 'pid'>
  /** The absolute signed URL of an identification's thumbnail, for this request's origin; null when it has none. */
  url (request: FastifyRequest, identification: { id: string, hasThumbnail?: boolean }): string | null
}

declare module 'fastify' {
  interface FastifyInstance {
    /** Thumbnails of identifications; null when HISTORY=off. */
    thumbnails: Thumbnails | null
  }
}
