// Plain TCP HTTP/1.1 for the tests a real client library would hide: bodies sent in pieces,
// bodies never finished, sockets dropped mid-request. Every wait is bounded, so a server that
// hangs fails the test instead of stalling it.
import net from 'node:net'
import { once } from 'node:events'

export const WAIT_MS = 5000

export interface RawResponse {
  statusCode: number
  headers: Record<string, string>
  body: string
}

export async function connect (port: number): Promise<net.Socket> {
  const socket = net.connect(port, '127.0.0.1')
  // Writes after the server has answered and closed may fail (EPIPE, ECONNRESET): that is expected here.
  socket.on('error', () => {})
  await once(socket, 'connect', { signal: AbortSignal.timeout(WAIT_MS) })
  return socket
}

/** The request line and headers of a POST with a declared body length. */
export function postHead (path: string, headers: Record<string, string>, contentLength: number): string {
  const lines = [`POST ${path} HTTP/1.1`, 'host: 127.0.0.1', `content-length: ${contentLength}`]
  for (const [name, value] of Object.entries(headers)) lines.push(`${name}: ${value}`)
  return lines.join('\r\n') + '\r\n\r\n'
}

/** Writes and waits until the chunk is handed to the OS (resolves early if the socket is gone). */
export async function write (socket: net.Socket, chunk: string | Buffer): Promise<void> {
  if (socket.destroyed || socket.writableEnded) return
  await new Promise<void>(resolve => socket.write(chunk, () => resolve()))
}

/**
 * The first complete response on `socket` (its body read to `content-length`). Call it before
 * writing, so that nothing is missed. Rejects if none arrives within `timeoutMs`.
 */
export async function readResponse (socket: net.Socket, timeoutMs = WAIT_MS): Promise<RawResponse> {
  return await new Promise<RawResponse>((resolve, reject) => {
    let received = Buffer.alloc(0)
    const timer = setTimeout(() => finish(new Error(`no complete HTTP response within ${timeoutMs} ms`)), timeoutMs)

    function finish (err: Error | null, response?: RawResponse): void {
      clearTimeout(timer)
      socket.off('data', onData)
      socket.off('close', onClose)
      if (err) reject(err)
      else resolve(response as RawResponse)
    }
    function onData (chunk: Buffer): void {
      received = Buffer.concat([received, chunk])
      try {
        const response = parse(received)
        if (response) finish(null, response)
      } catch (err) {
        finish(err as Error)
      }
    }
    function onClose (): void {
      finish(new Error(`socket closed before a complete response (got ${JSON.stringify(received.toString('latin1').slice(0, 200))})`))
    }
    socket.on('data', onData)
    socket.on('close', onClose)
  })
}

function parse (data: Buffer): RawResponse | undefined {
  const headerEnd = data.indexOf('\r\n\r\n')
  if (headerEnd === -1) return undefined
  const [statusLine = '', ...lines] = data.subarray(0, headerEnd).toString('latin1').split('\r\n')
  const headers: Record<string, string> = {}
  for (const line of lines) {
    const colon = line.indexOf(':')
    headers[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim()
  }
  const length = Number(headers['content-length'] ?? NaN)
  if (!Number.isInteger(length)) throw new Error(`response without content-length: ${statusLine}`)
  const body = data.subarray(headerEnd + 4)
  if (body.length < length) return undefined
  return { statusCode: Number(statusLine.split(' ')[1]), headers, body: body.subarray(0, length).toString('utf8') }
}

/** Resolves when `socket` has closed, whatever the reason (an 'error' is no failure here); rejects after `timeoutMs`. */
export async function closed (socket: net.Socket, timeoutMs = WAIT_MS): Promise<void> {
  if (socket.closed) return
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`socket still open after ${timeoutMs} ms`)), timeoutMs)
    socket.once('close', () => {
      clearTimeout(timer)
      resolve()
    })
  })
}
