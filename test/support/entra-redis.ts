// Redis as Azure runs it with Microsoft Entra authentication, on loopback: Debian's redis-server with ACL users
// (`default` off, an `admin` for the test), reached through a TLS-terminating proxy (node:tls, a test CA) that
// reads each client's `AUTH user token` and `HELLO 3 AUTH user token` and closes any connection whose last
// accepted token has expired, as Azure does; `closedForExpiry` counts those closures. Tokens become passwords of
// the ACL user named by the identity's object id when minted (`addToken`, from FakeAzure's onMint) and stop being
// one at their expiry. The proxy accepts an AUTH exactly when Redis does: the token is one of the user's live
// passwords (a refused re-AUTH leaves the connection on its previous token, as Redis does).
import { spawn } from 'node:child_process'
import { writeFileSync } from 'node:fs'
import { connect as netConnect, type Socket } from 'node:net'
import { join } from 'node:path'
import { createServer as createTlsServer, type TLSSocket } from 'node:tls'
import type { AddressInfo } from 'node:net'
import { once } from 'node:events'
import type { Test } from 'tap'
import { Redis } from 'ioredis'
import { freePort } from './server-process.ts'
import { makeTestCa, type TestCa } from './test-ca.ts'

export interface ProxiedConnection {
  id: number
  openedAtMs: number
  closedAtMs: number | undefined
  /** The user of the last accepted AUTH (or HELLO … AUTH). */
  user: string | undefined
  /** Accepted AUTHs, the first (HELLO AUTH) included. */
  auths: number
  /** AUTHs with a token that was not (or no longer) a password. */
  refusedAuths: number
  /** The expiry (ms) of the token the connection is authenticated with. */
  authenticatedUntilMs: number | undefined
  closedForExpiry: boolean
}

export interface EntraRedis {
  /** rediss://127.0.0.1:<proxy port>: what the app is given (no credentials in it). */
  url: string
  ca: TestCa
  /** A direct, plain connection as the admin user (the test's own view of Redis). */
  admin: Redis
  /** Makes `token` a password of ACL user `user` (created on first use) until `expiresOnMs`. */
  addToken (user: string, token: string, expiresOnMs: number): Promise<void>
  /** Every connection the proxy has seen, in order. */
  readonly connections: ProxiedConnection[]
  /** Connections the proxy closed because their token had expired. */
  readonly closedForExpiry: number
  /** Tokens handed to addToken, with their expiry, for the test's checks. */
  readonly tokens: ReadonlyMap<string, { user: string, expiresOnMs: number }>
}

const ADMIN_PASSWORD = 'entra-redis-admin-password'

export async function startEntraRedis (t: Test): Promise<EntraRedis> {
  const ca = makeTestCa(t, 'agrivision-test-redis')
  const port = await freePort()
  const conf = join(ca.dir, 'redis.conf')
  writeFileSync(conf, [
    `port ${port}`, 'bind 127.0.0.1', 'save ""', 'appendonly no',
    'user default off', `user admin on >${ADMIN_PASSWORD} ~* &* +@all`
  ].join('\n') + '\n')
  const server = spawn('redis-server', [conf], { stdio: ['ignore', 'pipe', 'inherit'] })
  t.teardown(() => { server.kill('SIGKILL') })
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('redis-server did not start within 5 s')), 5000)
    server.on('error', reject)
    server.stdout!.on('data', (chunk: Buffer) => { if (chunk.toString().includes('Ready to accept connections')) { clearTimeout(timer); resolve() } })
  })
  const admin = new Redis({ host: '127.0.0.1', port, username: 'admin', password: ADMIN_PASSWORD, lazyConnect: true })
  await admin.connect()

  const tokens = new Map<string, { user: string, expiresOnMs: number }>()
  const users = new Set<string>()
  const removals = new Set<NodeJS.Timeout>()
  async function addToken (user: string, token: string, expiresOnMs: number): Promise<void> {
    const rules = users.has(user) ? [`>${token}`] : ['on', `>${token}`, '~*', '&*', '+@all']
    await admin.call('ACL', 'SETUSER', user, ...rules)
    users.add(user)
    tokens.set(token, { user, expiresOnMs })
    const timer = setTimeout(() => {
      removals.delete(timer)
      admin.call('ACL', 'SETUSER', user, `<${token}`).catch(() => {})
    }, Math.max(0, expiresOnMs - Date.now()))
    removals.add(timer)
  }

  const connections: ProxiedConnection[] = []
  let closedForExpiry = 0
  const open = new Set<{ client: TLSSocket, upstream: Socket }>()
  const proxy = createTlsServer({ key: ca.key, cert: ca.cert }, client => {
    const record: ProxiedConnection = {
      id: connections.length + 1,
      openedAtMs: Date.now(),
      closedAtMs: undefined,
      user: undefined,
      auths: 0,
      refusedAuths: 0,
      authenticatedUntilMs: undefined,
      closedForExpiry: false
    }
    connections.push(record)
    const upstream = netConnect({ host: '127.0.0.1', port })
    const pair = { client, upstream }
    open.add(pair)
    let expiryTimer: NodeJS.Timeout | undefined
    const end = (): void => {
      if (record.closedAtMs === undefined) record.closedAtMs = Date.now()
      clearTimeout(expiryTimer)
      open.delete(pair)
      client.destroy()
      upstream.destroy()
    }
    client.on('error', end).on('close', end)
    upstream.on('error', end).on('close', end)
    upstream.pipe(client)
    const reader = new CommandReader()
    const authenticate = (user: string, token: string): void => {
      const known = tokens.get(token)
      if (known === undefined || known.user !== user || known.expiresOnMs <= Date.now()) {
        record.refusedAuths++
        return
      }
      record.user = user
      record.auths++
      record.authenticatedUntilMs = jwtExpiryMs(token) ?? known.expiresOnMs
      clearTimeout(expiryTimer)
      expiryTimer = setTimeout(function check () {
        const until = record.authenticatedUntilMs!
        if (Date.now() < until) { expiryTimer = setTimeout(check, until - Date.now()); return }
        record.closedForExpiry = true
        closedForExpiry++
        end()
      }, record.authenticatedUntilMs - Date.now())
    }
    client.on('data', (chunk: Buffer) => {
      upstream.write(chunk)
      for (const args of reader.push(chunk)) {
        const name = args[0]?.toUpperCase()
        if (name === 'AUTH' && args.length === 3) authenticate(args[1]!, args[2]!)
        if (name === 'HELLO') {
          const at = args.findIndex((arg, i) => i > 0 && arg.toUpperCase() === 'AUTH')
          if (at > 0 && args.length > at + 2) authenticate(args[at + 1]!, args[at + 2]!)
        }
      }
    })
  })
  proxy.listen(0, '127.0.0.1')
  await once(proxy, 'listening')
  t.teardown(async () => {
    for (const timer of removals) clearTimeout(timer)
    for (const { client, upstream } of open) { client.destroy(); upstream.destroy() }
    proxy.close()
    admin.disconnect()
  })
  return {
    url: `rediss://127.0.0.1:${(proxy.address() as AddressInfo).port}`,
    ca,
    admin,
    addToken,
    connections,
    get closedForExpiry () { return closedForExpiry },
    tokens
  }
}

/** The `exp` of a JWT-shaped token, in ms, read without verifying it; undefined for anything else. */
export function jwtExpiryMs (token: string): number | undefined {
  const parts = token.split('.')
  if (parts.length !== 3) return undefined
  try {
    const claims = JSON.parse(Buffer.from(parts[1]!, 'base64url').toString('utf8')) as { exp?: unknown }
    return typeof claims.exp === 'number' ? claims.exp * 1000 : undefined
  } catch {
    return undefined
  }
}

/**
 * Reads a client's commands off its byte stream (RESP arrays of bulk strings, or inline commands), as the bytes
 * come, and hands back only the arguments of AUTH and HELLO (others are skipped without decoding).
 */
class CommandReader {
  #buffer = Buffer.alloc(0)

  push (chunk: Buffer): string[][] {
    this.#buffer = this.#buffer.length === 0 ? Buffer.from(chunk) : Buffer.concat([this.#buffer, chunk])
    const commands: string[][] = []
    let at = 0
    for (;;) {
      const parsed = this.#parse(at)
      if (parsed === undefined) break
      at = parsed.next
      if (parsed.args !== undefined) commands.push(parsed.args)
    }
    this.#buffer = this.#buffer.subarray(at)
    return commands
  }

  /** One command from `start`: its end, and its arguments when it is AUTH or HELLO; undefined when incomplete. */
  #parse (start: number): { next: number, args: string[] | undefined } | undefined {
    const buffer = this.#buffer
    if (start >= buffer.length) return undefined
    const lineEnd = buffer.indexOf('\r\n', start)
    if (lineEnd < 0) return undefined
    if (buffer[start] !== 0x2a /* '*' */) {
      const words = buffer.subarray(start, lineEnd).toString('utf8').trim().split(/\s+/)
      const wanted = /^(AUTH|HELLO)$/i.test(words[0] ?? '')
      return { next: lineEnd + 2, args: wanted ? words : undefined }
    }
    const count = Number(buffer.subarray(start + 1, lineEnd).toString('latin1'))
    let at = lineEnd + 2
    const slices: Array<[number, number]> = []
    for (let i = 0; i < count; i++) {
      const headerEnd = buffer.indexOf('\r\n', at)
      if (headerEnd < 0) return undefined
      const length = Number(buffer.subarray(at + 1, headerEnd).toString('latin1'))
      const dataStart = headerEnd + 2
      if (buffer.length < dataStart + length + 2) return undefined
      slices.push([dataStart, dataStart + length])
      at = dataStart + length + 2
    }
    const name = slices[0] === undefined ? '' : buffer.subarray(slices[0][0], slices[0][1]).toString('latin1')
    const wanted = /^(AUTH|HELLO)$/i.test(name)
    return { next: at, args: wanted ? slices.map(([from, to]) => buffer.subarray(from, to).toString('utf8')) : undefined }
  }
}
