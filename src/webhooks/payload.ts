// The body of a delivery, made when it is sent: `{ type, timestamp, data }` with the identification as the
// GraphQL API shows it (its thumbnail as a signed URL valid from now, never image bytes). A failed
// identification has no answer: its data is who asked, when, and the error's code.
import type { Kysely } from 'kysely'
import type { HistoryTables } from '../history/tables.ts'
import type { WebhookTables } from './tables.ts'
import { fromRow, OK } from '../history/records.ts'
import { EVENT_COMPLETED, type WebhookEventType } from './tables.ts'

// Seam of issue 18: webhooks read identifications until they go through app.history.getRecord.
type HistoryDatabase = HistoryTables & WebhookTables

export interface PayloadOptions {
  /** The signed path of an identification's thumbnail (`/thumbnails/…`); null when thumbnails are off. */
  thumbnailPath: ((id: string) => string) | null
  /** PUBLIC_BASE_URL: prefixed to the thumbnail path; null: the path alone. */
  publicBaseUrl: string | null
}

export type Payload =
  | { kind: 'body', body: string }
  /** The identification is gone (withdrawn or purged): nothing to send. */
  | { kind: 'gone' }
  /** A completed identification whose thumbnail is not stored yet: worth waiting a moment for. */
  | { kind: 'no-thumbnail-yet', body: string }

export async function buildPayload (
  db: Kysely<HistoryDatabase>, eventType: WebhookEventType, identificationId: string, createdAt: number, options: PayloadOptions
): Promise<Payload> {
  const row = await db.selectFrom('identifications').selectAll().where('id', '=', identificationId).executeTakeFirst()
  if (row === undefined || row.deleted === 1) return { kind: 'gone' }
  const timestamp = new Date(createdAt).toISOString()
  if (eventType === EVENT_COMPLETED && row.outcome === OK) {
    const { hasThumbnail, ...identification } = fromRow(row)
    const thumbnailUrl = hasThumbnail && options.thumbnailPath !== null
      ? `${options.publicBaseUrl ?? ''}${options.thumbnailPath(identification.id)}`
      : null
    const body = JSON.stringify({ type: eventType, timestamp, data: { ...identification, thumbnailUrl } })
    return hasThumbnail || options.thumbnailPath === null ? { kind: 'body', body } : { kind: 'no-thumbnail-yet', body }
  }
  const data = {
    id: row.id,
    callerId: row.caller_id,
    code: row.outcome,
    language: row.language,
    backend: row.backend,
    durationMs: row.duration_ms,
    createdAt: new Date(Number(row.created_at)).toISOString()
  }
  return { kind: 'body', body: JSON.stringify({ type: eventType, timestamp, data }) }
}
