// Makes thumbnails off the request path: a small metadata-free JPEG (longest side 256) of the image as
// it was sent to the model. One is made at a time from a bounded queue; when the queue is full the
// thumbnail is skipped (counted), never waited for: identifications do not slow down for thumbnails.
// Image bytes never reach a log line.
import sharp from 'sharp'
import type { FastifyBaseLogger } from 'fastify'

export const THUMBNAIL_SIDE = 256
/** What sentImage can be at most (2048×2048 after the pipeline), with room: anything bigger is not ours. */
const MAX_INPUT_PIXELS = 4096 * 4096

export interface ThumbnailJob {
  id: string
  /** The image as sent to the model: upright, stripped, downscaled. */
  image: Buffer
  createdAt: Date
}

export interface ThumbnailMakerOptions {
  /** Makes one thumbnail: makeThumbnail in this process by default; the app hands in a low-priority process (low-priority.ts). */
  make?: (image: Buffer) => Promise<Buffer>
  save (id: string, jpeg: Buffer, createdAt: Date): Promise<void>
  /** Awaited before each save (history's record written first, so that the save can mark it). */
  beforeSave?: () => Promise<void>
  log: FastifyBaseLogger
  /** Jobs that may wait; beyond, new ones are skipped. */
  maxWaiting?: number
  counts?: { made?: () => void, skipped?: () => void, failed?: () => void }
}

/** The thumbnail of an image: JPEG, quality 70, longest side ≤ 256, never enlarged, no metadata. */
export async function makeThumbnail (image: Buffer): Promise<Buffer> {
  // autoOrient: a no-op for a sent image (no EXIF left), upright for an upload (SIMULATED's described ADAPTIVE LOW look).
  return await sharp(image, { limitInputPixels: MAX_INPUT_PIXELS, failOn: 'truncated', pages: 1, sequentialRead: true, autoOrient: true })
    .resize(THUMBNAIL_SIDE, THUMBNAIL_SIDE, { fit: 'inside', withoutEnlargement: true })
    .flatten({ background: '#ffffff' }) // a PNG sent unchanged may be transparent: white, as the pipeline does
    .jpeg({ quality: 70 })
    .toBuffer() // no withMetadata: nothing of the original's metadata is kept
}

export class ThumbnailMaker {
  readonly #options: ThumbnailMakerOptions
  readonly #maxWaiting: number
  readonly #queue: ThumbnailJob[] = []
  #running: Promise<void> | null = null
  #stopped = false

  constructor (options: ThumbnailMakerOptions) {
    this.#options = options
    this.#maxWaiting = options.maxWaiting ?? 16
  }

  /** Jobs waiting (not counting the one being made). */
  get waiting (): number { return this.#queue.length }

  /** Queues a thumbnail (a copy of its image); false when it is skipped (queue full, or stopping). Never waits. */
  offer (job: ThumbnailJob): boolean {
    if (this.#stopped || this.#queue.length >= this.#maxWaiting) {
      this.#options.counts?.skipped?.()
      return false
    }
    // A copy of the bytes, kept past the identification: they may be the upload's buffer, reused once it is over
    // (graphql/upload-buffers.ts). Only for a job taken: a skipped one copies nothing.
    this.#queue.push({ ...job, image: Buffer.from(job.image) })
    this.#running ??= this.#drain().finally(() => { this.#running = null })
    return true
  }

  /** Resolves once every queued thumbnail is made (or failed). */
  async idle (): Promise<void> {
    while (this.#running !== null) await this.#running
  }

  /** Takes no more; waits up to graceMs for the queue to drain; returns how many were abandoned. */
  async stop (graceMs: number): Promise<number> {
    this.#stopped = true
    let timer: NodeJS.Timeout | undefined
    await Promise.race([this.idle(), new Promise<void>(resolve => { timer = setTimeout(resolve, graceMs) })])
    clearTimeout(timer)
    const abandoned = this.#queue.length
    this.#queue.length = 0 // the one being made finishes on its own
    if (abandoned > 0) this.#options.log.warn({ abandoned }, 'thumbnails: not made at shutdown')
    return abandoned
  }

  async #drain (): Promise<void> {
    for (let job = this.#queue.shift(); job !== undefined; job = this.#queue.shift()) {
      await this.#make(job)
    }
  }

  async #make ({ id, image, createdAt }: ThumbnailJob): Promise<void> {
    const { save, beforeSave, log, counts, make = makeThumbnail } = this.#options
    let jpeg: Buffer
    try {
      jpeg = await make(image)
    } catch (err) {
      counts?.failed?.()
      // sharp's message names the problem, not the bytes
      log.warn({ identification: id, error: describe(err) }, 'thumbnails: cannot make one')
      return
    }
    try {
      await beforeSave?.()
      await save(id, jpeg, createdAt)
      counts?.made?.()
    } catch (err) {
      counts?.failed?.()
      // Only what kind of failure it was: a driver's error may carry the statement's parameters (the bytes).
      log.error({ identification: id, error: describe(err) }, 'thumbnails: cannot store one')
    }
  }
}

function describe (err: unknown): { name: string, code?: string, message: string } {
  if (!(err instanceof Error)) return { name: typeof err, message: 'not an Error' }
  const code = (err as { code?: unknown }).code
  return { name: err.name, ...(typeof code === 'string' ? { code } : {}), message: err.message.slice(0, 200) }
}
