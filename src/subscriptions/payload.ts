// What a completed identification becomes on its way to subscribers: a compact, JSON-safe message (it
// crosses Redis between instances, msgpack-encoded), published once per identification and turned back
// into the API's `Identification` by each subscriber's own resolver. Never the image's bytes.
import type { IdentificationCompleted } from '../identification/events.ts'
import type { Identification } from '../identification/types.ts'

/** The one topic (a Redis channel with REDIS_URL): every instance publishes to it and listens to it. */
export const COMPLETED_TOPIC = 'agrivision:identification:completed'

export interface CompletedMessage extends Omit<Identification, 'createdAt'> {
  /** Milliseconds since the epoch: a Date would not survive the trip through Redis. */
  createdAt: number
}

export function messageOf ({ identification }: IdentificationCompleted): CompletedMessage {
  return { ...identification, createdAt: identification.createdAt.getTime() }
}

/** As `identification(id)` shows it, less the thumbnail: made just after the answer, it does not exist yet. */
export function identificationOf (message: CompletedMessage): Identification & { hasThumbnail: boolean } {
  return { ...message, createdAt: new Date(message.createdAt), hasThumbnail: false }
}
