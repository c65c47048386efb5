// The identification seam: the flow announces what happens; metrics, the log line, history, subscriptions
// and webhooks subscribe. A subscriber never changes or breaks the flow: its errors, thrown or rejected, are
// logged and dropped. One kind may make the answer wait for it (`onDurable`): history, while webhooks need the
// record (and its outbox rows) on disk before the caller hears the answer, so that a crash loses no event.
import type { FastifyBaseLogger } from 'fastify'
import type { Caller } from '../callers/caller.ts'
import type { AppError } from '../errors.ts'
import type { RequestedDetail } from '../image/tokens.ts'
import type { VisionBackend } from '../vision/types.ts'
import type { AdaptiveReport } from './adaptive.ts'
import type { Identification, SentImageInfo } from './types.ts'

interface EventBase {
  /** The identification's id (also `Identification.id`). */
  id: string
  /** Who asked. */
  caller: Caller
  /** The HTTP request it came in, for log correlation. */
  requestId: string
  backend: VisionBackend
  /** Set for a bulk job's item: subscribers that announce each identification (webhooks, subscriptions) skip it. */
  bulkJobId?: string
}

export interface IdentificationStarted extends EventBase {
  bytes: number
  detail: RequestedDetail
  language: string
}

export interface IdentificationCompleted extends EventBase {
  identification: Identification
  detail: RequestedDetail
  /** Time in the vision backend (retries included). */
  upstreamMs: number
  /** HTTP status of the upstream answer; null for the simulated backend and cached answers. */
  upstreamStatus: number | null
  /** The result cache's key of this question (null when the cache is off): history keeps it for later lookups. */
  cacheKey: string | null
  /**
   * The image as sent to the model (upright, stripped, downscaled), for thumbnails; the upload when the image was
   * only described (a backend that reads no pixels: PreparedImage.described). Never logged.
   */
  sentImage: Buffer
  /** ADAPTIVE only: why a second look was taken (or not), whether it failed, the image tokens it saved. */
  adaptive?: AdaptiveReport
  /** Answered by Azure's Global Batch: usage prices its tokens at VISION_BATCH_PRICE_*_PER_MTOK. */
  batch?: boolean
}

export interface IdentificationFailed extends EventBase {
  code: AppError['code'] | 'INTERNAL_SERVER_ERROR'
  error: unknown
  bytes: number
  detail: RequestedDetail
  durationMs: number
  language: string
  /** Set when the failure came from (or after) the vision backend call. */
  upstreamMs?: number
  /** What was known of the image before it failed, if anything. */
  image?: Partial<SentImageInfo>
}

export interface IdentificationEventMap {
  started: IdentificationStarted
  completed: IdentificationCompleted
  failed: IdentificationFailed
}

export type IdentificationListener<K extends keyof IdentificationEventMap> = (event: IdentificationEventMap[K]) => void | Promise<void>

declare module 'fastify' {
  interface FastifyInstance {
    /** Where identifications are announced: a capability's plugin subscribes with `.on(...)`. */
    identificationEvents: IdentificationEvents
  }
}

export class IdentificationEvents {
  readonly #listeners: { [K in keyof IdentificationEventMap]: Array<IdentificationListener<K>> } =
    { started: [], completed: [], failed: [] }

  readonly #durable: { [K in keyof IdentificationEventMap]: Array<IdentificationListener<K>> } =
    { started: [], completed: [], failed: [] }

  readonly #log: FastifyBaseLogger

  constructor (log: FastifyBaseLogger) {
    this.#log = log
  }

  /** Subscribes; returns the function that unsubscribes. */
  on<K extends keyof IdentificationEventMap> (name: K, listener: IdentificationListener<K>): () => void {
    return subscribe(this.#listeners[name] as Array<IdentificationListener<K>>, listener)
  }

  /**
   * Subscribes a listener the answer may wait for: `settle` awaits the promise it returns before the flow answers.
   * It bounds its own wait (and returns nothing when there is nothing to wait for). `emit` calls it too, without waiting.
   */
  onDurable<K extends keyof IdentificationEventMap> (name: K, listener: IdentificationListener<K>): () => void {
    return subscribe(this.#durable[name] as Array<IdentificationListener<K>>, listener)
  }

  // Durable listeners first: the others may rely on what they did (webhooks wake their worker once history has
  // the record in its buffer, then written).
  emit<K extends keyof IdentificationEventMap> (name: K, event: IdentificationEventMap[K]): void {
    this.#dispatch(name, event, this.#durable[name] as Array<IdentificationListener<K>>)
    this.#dispatch(name, event, this.#listeners[name] as Array<IdentificationListener<K>>)
  }

  /** Emits, then waits for what the durable listeners returned (never fails: their errors are logged). */
  async settle<K extends keyof IdentificationEventMap> (name: K, event: IdentificationEventMap[K]): Promise<void> {
    const waits: Array<Promise<void>> = []
    this.#dispatch(name, event, this.#durable[name] as Array<IdentificationListener<K>>, waits)
    this.#dispatch(name, event, this.#listeners[name] as Array<IdentificationListener<K>>)
    if (waits.length > 0) await Promise.all(waits)
  }

  #dispatch<K extends keyof IdentificationEventMap> (
    name: K, event: IdentificationEventMap[K], listeners: Array<IdentificationListener<K>>, waits?: Array<Promise<void>>
  ): void {
    for (const listener of listeners) {
      try {
        const result = listener(event)
        if (result instanceof Promise) {
          const handled = result.catch(err => { this.#failed(name, err) })
          waits?.push(handled)
        }
      } catch (err) {
        this.#failed(name, err)
      }
    }
  }

  #failed (name: string, err: unknown): void {
    this.#log.error({ err, event: name }, 'an identification subscriber failed')
  }
}

/** Adds `listener` to `listeners`; returns the function that takes it out again. */
function subscribe<T> (listeners: T[], listener: T): () => void {
  listeners.push(listener)
  return () => {
    const index = listeners.indexOf(listener)
    if (index !== -1) listeners.splice(index, 1)
  }
}
