// A WebSocket client by hand over a plain TCP socket: sends exactly the frames a test writes (text or
// binary, any bytes) and can stop reading (pause) like a subscriber whose network or tab stalls. What a
// client library would never do, for the tests that play an attacker.
import net from 'node:net'
import { randomBytes } from 'node:crypto'

export interface Closed { code: number, reason: string }

const OPCODE = { text: 0x1, binary: 0x2, close: 0x8 } as const

export class RawWebSocket {
  readonly socket: net.Socket
  readonly status: number
  readonly headers: Record<string, string>
  /** Text messages received, parsed, in order. */
  readonly messages: any[] = []
  /** The server's close frame; null when the connection ended without one. */
  readonly closed: Promise<Closed | null>
  /** Bytes received after the handshake. */
  received = 0
  #pending: Buffer
  #close!: (closed: Closed | null) => void
  #waiters: Array<() => void> = []

  private constructor (socket: net.Socket, status: number, headers: Record<string, string>, rest: Buffer) {
    this.socket = socket
    this.status = status
    this.headers = headers
    this.#pending = Buffer.alloc(0)
    this.closed = new Promise(resolve => { this.#close = resolve })
    socket.on('data', (chunk: Buffer) => { this.#data(chunk) })
    socket.on('close', () => { this.#close(null); this.#wake() })
    socket.on('error', () => {})
    if (rest.length > 0) this.#data(rest)
  }

  /** Connects and upgrades, offering `protocol` (none when null); resolves once the server answered the upgrade. */
  static async connect (url: string, protocol: string | null = 'graphql-transport-ws'): Promise<RawWebSocket> {
    const { hostname, port, pathname } = new URL(url)
    const socket = net.connect({ host: hostname, port: Number(port) })
    await new Promise<void>((resolve, reject) => { socket.once('connect', resolve); socket.once('error', reject) })
    socket.write([
      `GET ${pathname} HTTP/1.1`, `Host: ${hostname}:${port}`, 'Upgrade: websocket', 'Connection: Upgrade',
      `Sec-WebSocket-Key: ${randomBytes(16).toString('base64')}`, 'Sec-WebSocket-Version: 13',
      ...(protocol === null ? [] : [`Sec-WebSocket-Protocol: ${protocol}`]), '', ''
    ].join('\r\n'))
    let head = Buffer.alloc(0)
    for (;;) {
      const chunk = await new Promise<Buffer>((resolve, reject) => {
        socket.once('data', resolve)
        socket.once('end', () => reject(new Error('the server ended the connection during the upgrade')))
      })
      head = Buffer.concat([head, chunk])
      const end = head.indexOf('\r\n\r\n')
      if (end === -1) continue
      socket.removeAllListeners('end')
      const [statusLine = '', ...lines] = head.subarray(0, end).toString('latin1').split('\r\n')
      const headers = Object.fromEntries(lines.map(line => [line.slice(0, line.indexOf(':')).toLowerCase(), line.slice(line.indexOf(':') + 1).trim()]))
      return new RawWebSocket(socket, Number(statusLine.split(' ')[1]), headers, head.subarray(end + 4))
    }
  }

  sendText (text: string | Buffer): void { this.socket.write(frame(OPCODE.text, Buffer.from(text))) }
  sendBinary (bytes: Buffer): void { this.socket.write(frame(OPCODE.binary, bytes)) }
  send (message: unknown): void { this.sendText(JSON.stringify(message)) }

  /** The server's close frame (null: ended without one); rejects when the connection is still open after `ms`. */
  async closedWithin (ms = 5000): Promise<Closed | null> {
    let timer: NodeJS.Timeout | undefined
    try {
      return await Promise.race([this.closed, new Promise<never>((_resolve, reject) => {
        timer = setTimeout(() => reject(new Error(`the socket was not closed within ${ms} ms`)), ms)
      })])
    } finally {
      clearTimeout(timer)
    }
  }

  /** Stops reading: what the server sends stays in the kernel's buffers, then in the server's. */
  pause (): void { this.socket.pause() }
  resume (): void { this.socket.resume() }
  destroy (): void { this.socket.destroy() }
  get destroyed (): boolean { return this.socket.destroyed }

  /** Resolves once a received message satisfies `predicate` (rejects after `ms`, or when the connection ends first). */
  async waitFor (predicate: (message: any) => boolean, ms = 5000): Promise<any> {
    const deadline = Date.now() + ms
    for (;;) {
      const found = this.messages.find(predicate)
      if (found !== undefined) return found
      if (this.socket.destroyed) throw new Error('the connection ended')
      const left = deadline - Date.now()
      if (left <= 0) throw new Error(`no such message within ${ms} ms`)
      await new Promise<void>(resolve => {
        const timer = setTimeout(resolve, left)
        this.#waiters.push(() => { clearTimeout(timer); resolve() })
      })
    }
  }

  #wake (): void { this.#waiters.splice(0).forEach(wake => wake()) }

  #data (chunk: Buffer): void {
    this.received += chunk.length
    this.#pending = this.#pending.length === 0 ? chunk : Buffer.concat([this.#pending, chunk])
    for (;;) {
      const parsed = parseFrame(this.#pending)
      if (parsed === null) break
      this.#pending = this.#pending.subarray(parsed.length)
      if (parsed.opcode === OPCODE.text) this.messages.push(JSON.parse(parsed.payload.toString('utf8')))
      if (parsed.opcode === OPCODE.close) {
        this.#close({ code: parsed.payload.length >= 2 ? parsed.payload.readUInt16BE(0) : 1005, reason: parsed.payload.subarray(2).toString('utf8') })
        this.socket.end()
      }
    }
    this.#wake()
  }
}

/** A client frame: final, masked (RFC 6455 5.3). */
function frame (opcode: number, payload: Buffer): Buffer {
  const mask = randomBytes(4)
  let header: Buffer
  if (payload.length < 126) {
    header = Buffer.from([0x80 | opcode, 0x80 | payload.length])
  } else if (payload.length < 65_536) {
    header = Buffer.alloc(4)
    header[1] = 0x80 | 126
    header.writeUInt16BE(payload.length, 2)
  } else {
    header = Buffer.alloc(10)
    header[1] = 0x80 | 127
    header.writeBigUInt64BE(BigInt(payload.length), 2)
  }
  header[0] = 0x80 | opcode
  const masked = Buffer.from(payload)
  for (let i = 0; i < masked.length; i++) masked[i]! ^= mask[i % 4]!
  return Buffer.concat([header, mask, masked])
}

/** One server frame (unmasked) at the start of `data`, or null while it is incomplete. */
function parseFrame (data: Buffer): { opcode: number, payload: Buffer, length: number } | null {
  if (data.length < 2) return null
  const opcode = data[0]! & 0x0f
  let length = data[1]! & 0x7f
  let offset = 2
  if (length === 126) {
    if (data.length < 4) return null
    length = data.readUInt16BE(2)
    offset = 4
  } else if (length === 127) {
    if (data.length < 10) return null
    length = Number(data.readBigUInt64BE(2))
    offset = 10
  }
  if (data.length < offset + length) return null
  return { opcode, payload: data.subarray(offset, offset + length), length: offset + length }
}
