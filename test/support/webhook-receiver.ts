// A loopback webhook receiver for the webhook tests and the load suite: it keeps every request (headers,
// body, when it arrived) and answers as the test's handler says (a status, headers, a body, a delay, a
// reset or a hang), so that each delivery rule can be driven and then checked with `standardwebhooks`.
import http from 'node:http'
import { once } from 'node:events'
import type { AddressInfo } from 'node:net'
import type { Test } from 'tap'
import { Webhook } from 'standardwebhooks'

export interface Received {
  path: string
  host: string
  headers: Record<string, string>
  webhookId: string
  body: string
  /** performance.now() when its headers arrived. */
  at: number
}

export interface Reply {
  status?: number
  headers?: Record<string, string>
  body?: string | Buffer
  delayMs?: number
  /** Destroy the connection without an answer (a reset). */
  reset?: boolean
  /** Never answer (the service's attempt times out). */
  hang?: boolean
}

export type Handler = (request: Received, index: number) => Reply | Promise<Reply>

export interface Receiver {
  origin: string
  url: (path?: string) => string
  port: number
  received: Received[]
  handler: Handler
  close: () => Promise<void>
}

export async function startReceiver (t: Test | null, handler: Handler = () => ({ status: 204 })): Promise<Receiver> {
  const sockets = new Set<import('node:net').Socket>()
  const receiver: Receiver = {
    origin: '',
    url: (path = '/hook') => `${receiver.origin}${path}`,
    port: 0,
    received: [],
    handler,
    close: async () => {
      for (const socket of sockets) socket.destroy()
      server.close()
      await once(server, 'close').catch(() => {})
    }
  }
  const server = http.createServer((req, res) => {
    const at = performance.now()
    const chunks: Buffer[] = []
    req.on('data', (chunk: Buffer) => chunks.push(chunk))
    req.on('end', () => {
      const headers: Record<string, string> = {}
      for (const [name, value] of Object.entries(req.headers)) if (typeof value === 'string') headers[name] = value
      const request: Received = {
        path: req.url ?? '',
        host: headers.host ?? '',
        headers,
        webhookId: headers['webhook-id'] ?? '',
        body: Buffer.concat(chunks).toString('utf8'),
        at
      }
      const index = receiver.received.push(request) - 1
      void (async () => {
        const reply = await receiver.handler(request, index)
        if (reply.delayMs !== undefined) await new Promise(resolve => setTimeout(resolve, reply.delayMs))
        if (reply.hang === true) return
        if (reply.reset === true) { req.socket.destroy(); return }
        res.writeHead(reply.status ?? 204, reply.headers)
        res.end(reply.body)
      })()
    })
  })
  server.on('connection', socket => { sockets.add(socket); socket.on('close', () => sockets.delete(socket)) })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  receiver.port = (server.address() as AddressInfo).port
  receiver.origin = `http://127.0.0.1:${receiver.port}`
  t?.teardown(receiver.close)
  return receiver
}

/** True when `standardwebhooks` accepts the request with this secret. */
export function verifies (secret: string, request: Received): boolean {
  try {
    new Webhook(secret).verify(request.body, request.headers)
    return true
  } catch {
    return false
  }
}
