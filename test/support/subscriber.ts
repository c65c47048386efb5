// A subscriber as a dashboard runs one: the graphql-ws client library (graphql-transport-ws) over Node's
// own WebSocket, with what it receives kept in order and how its socket closed, every wait bounded.
import { createClient, type Client } from 'graphql-ws'

export const COMPLETED = `subscription Completed($filter: IdentificationFilter) {
  identificationCompleted(filter: $filter) {
    id callerId answer cached thumbnailUrl createdAt durationMs backend model language
    vehicles { category kind make model confidence }
    image { sha256 mimeType bytes width height }
    usage { totalTokens }
  }
}`

export interface Closed { code: number, reason: string }

export interface Subscriber {
  client: Client
  /** Payloads (`{ data }` or `{ errors }`) in the order they came, with when (performance.now()). */
  received: Array<{ payload: any, at: number }>
  /** The subscription's error (GraphQL errors, or the socket's close event when it ended it). */
  error: Promise<unknown>
  /** How the socket closed, the first time it did. */
  closed: Promise<Closed>
  /** Resolves once the server has acknowledged connection_init. */
  connected: Promise<void>
  /** The next payload not yet taken; rejects after `timeoutMs`. */
  next (timeoutMs?: number): Promise<any>
  dispose (): Promise<void>
}

export interface SubscribeOptions {
  connectionParams?: Record<string, unknown> | (() => Record<string, unknown>)
  variables?: Record<string, unknown>
  query?: string
  retryAttempts?: number
  /** Wait before a retry; graphql-ws' default backs off for seconds. */
  retryWaitMs?: number
}

export function subscribe (
  url: string, { connectionParams, variables = {}, query = COMPLETED, retryAttempts = 0, retryWaitMs }: SubscribeOptions = {}
): Subscriber {
  let closedResolve!: (closed: Closed) => void
  const closed = new Promise<Closed>(resolve => { closedResolve = resolve })
  let connectedResolve!: () => void
  const connected = new Promise<void>(resolve => { connectedResolve = resolve })
  const client = createClient({
    url,
    webSocketImpl: WebSocket,
    connectionParams,
    retryAttempts,
    ...(retryWaitMs === undefined ? {} : { retryWait: async () => { await new Promise(resolve => setTimeout(resolve, retryWaitMs)) } }),
    lazy: true,
    on: {
      connected: () => connectedResolve(),
      closed: (event) => { const { code, reason } = event as CloseEvent; closedResolve({ code, reason }) }
    }
  })
  const received: Array<{ payload: any, at: number }> = []
  let taken = 0
  const waiters: Array<() => void> = []
  let errorResolve!: (err: unknown) => void
  const error = new Promise<unknown>(resolve => { errorResolve = resolve })
  client.subscribe({ query, variables }, {
    next: (payload) => { received.push({ payload, at: performance.now() }); waiters.splice(0).forEach(wake => wake()) },
    error: (err) => { errorResolve(err); waiters.splice(0).forEach(wake => wake()) },
    complete: () => {}
  })
  return {
    client,
    received,
    error,
    closed,
    connected,
    async next (timeoutMs = 5000) {
      const deadline = performance.now() + timeoutMs
      while (received.length <= taken) {
        const left = deadline - performance.now()
        if (left <= 0) throw new Error(`no subscription payload within ${timeoutMs} ms`)
        await new Promise<void>(resolve => {
          const timer = setTimeout(resolve, left)
          waiters.push(() => { clearTimeout(timer); resolve() })
        })
      }
      return received[taken++]?.payload
    },
    async dispose () {
      await client.dispose()
    }
  }
}

/** Resolves with `promise`'s value, or rejects after `ms`. */
export async function within<T> (promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  try {
    return await Promise.race([promise, new Promise<T>((_resolve, reject) => { timer = setTimeout(() => reject(new Error(`${what}: not within ${ms} ms`)), ms) })])
  } finally {
    clearTimeout(timer)
  }
}
