// The body of a delivery, made when it is sent: `{ type, timestamp, data }` with the identification as the
// GraphQL API shows it (its thumbnail as a signed URL valid from now, never image bytes). A failed
// identification has no answer: its data is who asked, when, and the error's code.
import type { RecordedOutcome } from '../history/public.ts'
import type { WebhookEventType } from './tables.ts'

/** history.getRecord: the recorded identification, undefined when gone (withdrawn or purged). */
export type RecordReader = (id: string) => Promise<RecordedOutcome | undefined>

export interface PayloadOptions {
  /** Other features' event types and how their `data` is made (registerEventType). */
  featureEvents?: ReadonlyMap<string, (subjectId: string) => Promise<Record<string, unknown> | undefined>>
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
  getRecord: RecordReader, eventType: WebhookEventType, identificationId: string, createdAt: number, options: PayloadOptions
): Promise<Payload> {
  const feature = options.featureEvents?.get(eventType)
  if (feature !== undefined) { // another feature's subject (a bulk job): its own data
    const data = await feature(identificationId)
    if (data === undefined) return { kind: 'gone' }
    return { kind: 'body', body: JSON.stringify({ type: eventType, timestamp: new Date(createdAt).toISOString(), data }) }
  }
  const record = await getRecord(identificationId)
  if (record === undefined) return { kind: 'gone' }
  const timestamp = new Date(createdAt).toISOString()
  if (record.ok) {
    const { hasThumbnail, ...identification } = record.identification
    const thumbnailUrl = hasThumbnail && options.thumbnailPath !== null
      ? `${options.publicBaseUrl ?? ''}${options.thumbnailPath(identification.id)}`
      : null
    const body = JSON.stringify({ type: eventType, timestamp, data: { ...identification, thumbnailUrl } })
    return hasThumbnail || options.thumbnailPath === null ? { kind: 'body', body } : { kind: 'no-thumbnail-yet', body }
  }
  const { id, callerId, code, language, backend, durationMs, createdAt: at } = record.failure
  const data = { id, callerId, code, language, backend, durationMs, createdAt: at.toISOString() }
  return { kind: 'body', body: JSON.stringify({ type: eventType, timestamp, data }) }
}
