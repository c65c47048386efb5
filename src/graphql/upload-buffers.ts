// Buffers for uploads, reused: a ~100 KB photo per request, freshly allocated, is external memory V8 counts
// towards its next full garbage collection; at a thousand uploads a second that was a mark-compact every ~150
// requests and a third of the process's CPU (bench/cpu.ts). A buffer comes back once its identification is over
// (Upload.release, from the resolver), and only then; one never given back is simply collected. Power-of-two sizes
// from 64 KiB to 2 MiB; larger uploads are allocated as before. What waits for reuse is bounded (MAX_IDLE_BYTES).
const MIN_SIZE = 64 * 1024
const MAX_SIZE = 2 * 1024 * 1024
const MAX_IDLE_BYTES = 8 * 1024 * 1024

export class UploadBuffers {
  readonly #idle = new Map<number, Buffer[]>()
  #idleBytes = 0

  /** A buffer of at least `size` bytes (its contents are old: write before reading). */
  take (size: number): Buffer {
    if (size > MAX_SIZE) return Buffer.allocUnsafeSlow(size)
    const capacity = sizeClass(size)
    const reused = this.#idle.get(capacity)?.pop()
    if (reused !== undefined) {
      this.#idleBytes -= capacity
      return reused
    }
    return Buffer.allocUnsafeSlow(capacity)
  }

  /** Gives a buffer from `take` back; nothing may read or write it afterwards. */
  give (buffer: Buffer): void {
    const capacity = buffer.length
    if (capacity > MAX_SIZE || capacity !== sizeClass(capacity) || this.#idleBytes + capacity > MAX_IDLE_BYTES) return
    let list = this.#idle.get(capacity)
    if (list === undefined) this.#idle.set(capacity, list = [])
    list.push(buffer)
    this.#idleBytes += capacity
  }

  /** Bytes waiting for reuse. */
  get idleBytes (): number { return this.#idleBytes }
}

function sizeClass (size: number): number {
  return Math.max(MIN_SIZE, 2 ** Math.ceil(Math.log2(size)))
}
