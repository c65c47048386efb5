// How many messages one socket may send: a token bucket of `perSecond` tokens, refilled continuously,
// so a client may send a burst of that many and then that many a second. No timer: refilled on use.
export class MessageRate {
  readonly #perSecond: number
  readonly #now: () => number
  #tokens: number
  #at: number

  constructor (perSecond: number, now: () => number = performance.now.bind(performance)) {
    this.#perSecond = perSecond
    this.#now = now
    this.#tokens = perSecond
    this.#at = now()
  }

  /** Whether one more message is within the rate (it is then counted). */
  take (): boolean {
    const now = this.#now()
    this.#tokens = Math.min(this.#perSecond, this.#tokens + (now - this.#at) * this.#perSecond / 1000)
    this.#at = now
    if (this.#tokens < 1) return false
    this.#tokens--
    return true
  }
}
