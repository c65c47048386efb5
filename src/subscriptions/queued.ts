// What a subscription's queue holds, counted in its socket's backlog (connections.ts). mercurius gives each
// subscription a queue (a Readable in object mode) that its pubsub pushes every published event into,
// whatever the queue already holds, while it writes that subscription's frames one at a time: a subscriber
// that does not read leaves them all there. So every push is counted (at the event's JSON size) until the
// subscription reads it, and refused once the socket's backlog is full.
import type { Backlog } from './connections.ts'

/** The part of mercurius' subscription queue (a Readable in object mode) the backlog is counted on. */
export interface QueueStream { push: (chunk: unknown) => boolean }

/**
 * An event's estimated size in a queue (its JSON's bytes), computed once per event: every local queue is
 * pushed the same object (also one decoded from Redis).
 */
export function eventSizes (): (event: unknown) => number {
  const known = new WeakMap<object, number>()
  return (event) => {
    if (typeof event !== 'object' || event === null) return Buffer.byteLength(String(JSON.stringify(event)))
    let bytes = known.get(event)
    if (bytes === undefined) {
      bytes = Buffer.byteLength(JSON.stringify(event))
      known.set(event, bytes)
    }
    return bytes
  }
}

export interface QueuedCount {
  /** An event left the queue (read to be sent, or filtered out). */
  taken: (event: unknown) => void
  /** The subscription ended: what its queue still holds no longer counts. */
  end: () => void
}

/**
 * Counts the events waiting in a subscription's queue in its socket's backlog: each one pushed (by
 * mercurius' pubsub, for every event published, before the filter) until it is taken to be sent. An event
 * the backlog refuses is dropped: its socket is being closed for being too slow.
 */
export function countQueued (queue: QueueStream, backlog: Backlog, sizeOf: (event: unknown) => number): QueuedCount {
  let held = 0
  let ended = false
  const push = queue.push.bind(queue)
  queue.push = (chunk: unknown) => {
    if (chunk === null || ended) return push(chunk)
    const bytes = sizeOf(chunk)
    if (!backlog.add(bytes)) return false
    held += bytes
    return push(chunk)
  }
  return {
    taken: (event) => {
      if (ended) return
      const bytes = Math.min(held, sizeOf(event))
      held -= bytes
      backlog.remove(bytes)
    },
    end: () => {
      if (ended) return
      ended = true
      backlog.remove(held)
      held = 0
    }
  }
}
