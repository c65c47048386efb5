// Upload bytes in flight: an upload reserves its size before its body is read, per caller and for the
// whole process, and gives it back when its request ends. Receiving holds no vision slot (a stalled
// or slow body cannot keep others from the model); what bounds it is this budget, the idle timeout and
// the minimum rate (src/graphql/upload.ts). Beyond the caller's budget: 429 RATE_LIMITED; beyond the
// process's: 503 OVERLOADED; both at once, before a byte of the body is read, with Retry-After.
import { OverloadedError, RateLimitedError } from '../errors.ts'
import type { Release } from './admission.ts'

export interface UploadBudgetOptions {
  /** Bytes of uploads in flight, every caller together (UPLOAD_BYTES_IN_FLIGHT). */
  maxBytes: number
  /** Bytes of uploads in flight for one caller (UPLOAD_BYTES_IN_FLIGHT_PER_CALLER). */
  maxBytesPerCaller: number
  /** What a refusal tells the client to wait: about the time in which a stalled upload is cut off. */
  retryAfterSeconds: number
}

export type UploadBudgetRefusal = 'upload_bytes_caller' | 'upload_bytes_total'

export class UploadBudget {
  readonly options: UploadBudgetOptions
  #bytes = 0
  #uploads = 0
  #perCaller = new Map<string, number>()
  #refused: (reason: UploadBudgetRefusal) => void

  constructor (options: UploadBudgetOptions, refused: (reason: UploadBudgetRefusal) => void = () => {}) {
    this.options = options
    this.#refused = refused
  }

  /** Bytes reserved now, every caller together. */
  get bytes (): number { return this.#bytes }
  /** Uploads holding a reservation now. */
  get uploads (): number { return this.#uploads }
  bytesOf (caller: string): number { return this.#perCaller.get(caller) ?? 0 }

  /**
   * Reserves `bytes` for `caller`, or throws. A budget with nothing reserved takes any one upload,
   * so that an upload of MAX_UPLOAD_BYTES is never refused for a budget set below it.
   */
  reserve (caller: string, bytes: number): Release {
    const { maxBytes, maxBytesPerCaller, retryAfterSeconds } = this.options
    const mine = this.bytesOf(caller)
    if (mine > 0 && mine + bytes > maxBytesPerCaller) {
      this.#refused('upload_bytes_caller')
      throw new RateLimitedError(`This caller already has ${mine} bytes of uploads in flight; at most ${maxBytesPerCaller} ` +
        `are allowed (UPLOAD_BYTES_IN_FLIGHT_PER_CALLER). Wait for one to finish. Try again in ${retryAfterSeconds} s.`, retryAfterSeconds)
    }
    if (this.#bytes > 0 && this.#bytes + bytes > maxBytes) {
      this.#refused('upload_bytes_total')
      throw new OverloadedError('The service is receiving as many upload bytes as it may hold (UPLOAD_BYTES_IN_FLIGHT). ' +
        `Try again in ${retryAfterSeconds} s.`, retryAfterSeconds)
    }
    this.#bytes += bytes
    this.#uploads++
    this.#perCaller.set(caller, mine + bytes)
    let released = false
    return () => {
      if (released) return
      released = true
      this.#bytes -= bytes
      this.#uploads--
      const left = this.bytesOf(caller) - bytes
      if (left > 0) this.#perCaller.set(caller, left)
      else this.#perCaller.delete(caller)
    }
  }
}
