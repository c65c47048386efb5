// Every photo goes through the queue, online or not: it is stored first, then sent. A send that fails for a
// reason that may pass (no network, the service or Azure unavailable) stays queued and is tried again later
// with the same Idempotency-Key; refused credentials keep it queued until the same user signs in again; only a photo
// the service itself refuses (not an image, too large) leaves the queue, with its error. A Sender sends only the
// photos its own identity queued (credentials.owner): never another user's, whoever is signed in.
import { ApiError, uploadIdentification, type Identification } from './api.ts'
import type { Credentials } from './auth.ts'
import { dequeue, enqueue, isQueued, queued, type QueuedPhoto } from './queue.ts'

export interface SenderEvents {
  /** The queue changed (added, sent, cancelled). */
  changed (entries: QueuedPhoto[]): void
  progress (key: string, fraction: number): void
  answered (key: string, identification: Identification): void
  failed (key: string, error: ApiError): void
}

const RETRY_DELAYS_MS = [2_000, 5_000, 15_000, 30_000, 60_000]

export class Sender {
  readonly #credentials: Credentials
  readonly #events: SenderEvents
  #draining = false
  #stopped = false
  #again = false
  #failures = 0
  #timer: ReturnType<typeof setTimeout> | undefined
  #current: AbortController | undefined
  #currentKey: string | undefined

  constructor (credentials: Credentials, events: SenderEvents) {
    this.#credentials = credentials
    this.#events = events
    addEventListener('online', this.#onOnline)
  }

  readonly #onOnline = (): void => { this.#failures = 0; void this.drain() }

  /** Signed out (or another identity): nothing more is sent with these credentials, not even the rest of a drain. */
  stop (): void {
    this.#stopped = true
    removeEventListener('online', this.#onOnline)
    clearTimeout(this.#timer)
    this.#current?.abort()
  }

  async submit (photo: Omit<QueuedPhoto, 'owner'>): Promise<void> {
    await enqueue({ ...photo, owner: this.#credentials.owner })
    await this.#changed()
    await this.drain()
  }

  async cancel (key: string): Promise<void> {
    if (this.#currentKey === key) this.#current?.abort()
    if (await isQueued(key, this.#credentials.owner)) await dequeue(key)
    await this.#changed()
  }

  async #changed (): Promise<void> {
    if (!this.#stopped) this.#events.changed(await queued(this.#credentials.owner))
  }

  /** Sends what waits, oldest first, one at a time; stops at the first failure that may pass. */
  async drain (): Promise<void> {
    if (this.#stopped) return
    if (this.#draining) { this.#again = true; return }
    this.#draining = true
    clearTimeout(this.#timer)
    try {
      do {
        this.#again = false
        if (!navigator.onLine) return
        for (const photo of await queued(this.#credentials.owner)) {
          if (this.#stopped) return
          if (!await isQueued(photo.key, this.#credentials.owner)) continue // cancelled while an earlier one was being sent
          if (!await this.#send(photo)) return
        }
      } while (this.#again)
    } finally {
      this.#draining = false
    }
  }

  /** False when the queue should wait (a retryable failure: a retry is scheduled). */
  async #send (photo: QueuedPhoto): Promise<boolean> {
    this.#current = new AbortController()
    this.#currentKey = photo.key
    try {
      const onProgress = (fraction: number): void => { this.#events.progress(photo.key, fraction) }
      const identification = await uploadIdentification(this.#credentials, photo, onProgress, this.#current.signal)
      this.#failures = 0
      await dequeue(photo.key)
      await this.#changed()
      if (!this.#stopped) this.#events.answered(photo.key, identification)
      return true
    } catch (err) {
      // Not the service's answer (the sign-in library failed, a redirect to sign in started): keep the photo.
      const error = err instanceof ApiError ? err : new ApiError(err instanceof Error ? err.message : String(err), 'SIGN_IN', 0)
      if (error.code === 'CANCELLED') return true
      if (this.#stopped) return false
      this.#events.failed(photo.key, error)
      if (error.needsSignIn) return false // waits in the queue; drain() runs again once the same identity signs in again (a new Sender)
      if (error.retryable) {
        const delay = RETRY_DELAYS_MS[Math.min(this.#failures++, RETRY_DELAYS_MS.length - 1)] as number
        this.#timer = setTimeout(() => { void this.drain() }, delay)
        return false
      }
      await dequeue(photo.key)
      await this.#changed()
      return true
    } finally {
      this.#current = undefined
      this.#currentKey = undefined
    }
  }
}

export function newKey (): string {
  if (typeof crypto.randomUUID === 'function') return crypto.randomUUID()
  return Array.from(crypto.getRandomValues(new Uint8Array(16)), byte => byte.toString(16).padStart(2, '0')).join('')
}
