// A PostgreSQL pool whose connections log in with the managed identity's Microsoft Entra ID token
// (DATABASE_AUTH=entra), over TLS verified against the given CA, the host name included (sslmode=verify-full).
//
// - The password is an async function: each new connection asks the token source for a token with enough life
//   left (waiting for the shared refresh rather than logging in on one about to expire). A checkout makes sure of
//   that token before it opens a socket, so a slow identity endpoint holds no half-open login on the server.
// - PostgreSQL checks the password at login only, and whether Azure ends a session when its login token expires is
//   not documented: a connection is recycled before that, refreshMargin(lifetime) ahead (src/azure/margins.ts). Idle,
//   it is dropped from the pool at that point; checked out, when it is released; a checkout never hands out one.
// - A token that cannot be had fails the connection like an unreachable server (DatabaseLoginUnavailable, no secret
//   in it): the history keeps its records and retries, queries answer STORAGE_UNAVAILABLE. Never a crash.
// - A login the server refuses (28P01, the token not accepted) is logged, with the user and what to check.
import type { FastifyBaseLogger } from 'fastify'
import type { PostgresPool, PostgresPoolClient } from 'kysely'
import pg from 'pg'
import type { IssuedToken, TokenSource } from '../azure/token-source.ts'
import { refreshMargin } from '../azure/margins.ts'

export interface EntraPoolOptions {
  /** postgres://<identity name>@host:port/database, no password, no query (database/config.ts checked it). */
  url: string
  poolSize: number
  tokens: TokenSource
  /** PEM of the CA(s) to trust; null: Node's bundled CAs. */
  ca: string | null
  /** One token fetch's timeout (AZURE_TOKEN_TIMEOUT_MS): a connection waits for it, and a little more. */
  tokenTimeoutMs: number
  log: FastifyBaseLogger
  types: pg.CustomTypesConfig
  now?: () => number
}

/** A connection failed because no token could be had: the database-outage path (records buffered, retried). */
export class DatabaseLoginUnavailable extends Error {
  override name = 'DatabaseLoginUnavailable'
}

/**
 * How much life a token must have left to log in with: the recycle margin plus a while to use the connection
 * (min(60 s, lifetime / 8)), and no less than the token provider's refresh point (min(4 min, lifetime / 2)): a login
 * never uses a token whose replacement is being fetched, it waits for that one. 60-minute tokens: 4 minutes.
 */
export function loginValidityMs (lifetimeMs: number): number {
  return Math.max(refreshMargin(lifetimeMs) + Math.min(60_000, lifetimeMs / 8), Math.min(240_000, lifetimeMs / 2))
}

export interface EntraPool extends PostgresPool {
  /** Connections recycled because their login token was about to expire. */
  readonly recycled: () => number
}

export function createEntraPool (options: EntraPoolOptions): EntraPool {
  const { tokens, log } = options
  const now = options.now ?? Date.now
  const url = new URL(options.url)
  /** The token each connection logged in with, by its connection parameters (what pg hands the password function). */
  const loginTokens = new WeakMap<object, IssuedToken>()
  const expiring = new WeakSet<pg.PoolClient>()
  const checkedOut = new WeakSet<pg.PoolClient>()
  let recycled = 0

  /** A token good to log in with (see loginValidityMs); a failure is the database's: DatabaseLoginUnavailable. */
  const tokenForLogin = async (): Promise<IssuedToken> => {
    const current = tokens.current()
    const lifetimeMs = current === undefined ? 0 : current.expiresOnMs - current.obtainedAtMs
    try {
      return await tokens.getAccessToken({ minValidityMs: loginValidityMs(lifetimeMs) })
    } catch (err) {
      // The token source's message names the credential and why, never a token.
      throw new DatabaseLoginUnavailable(`database: no Microsoft Entra ID token to log in with (${(err as Error).message})`, { cause: err })
    }
  }

  const pool = new pg.Pool({
    // Named one by one, never as a connection string: pg lets a URL's parameters override these options.
    host: url.hostname.replace(/^\[(.*)\]$/, '$1'),
    port: url.port === '' ? 5432 : Number(url.port),
    database: decodeURIComponent(url.pathname.slice(1)) || undefined,
    user: decodeURIComponent(url.username),
    // node:tls checks the certificate against `ca` (or Node's CAs) and the name against the host (pg sets
    // servername for a DNS name; an IP address is matched against the certificate's IP entries).
    ssl: { rejectUnauthorized: true, ...(options.ca === null ? {} : { ca: options.ca }) },
    // pg calls it with the connection's parameters (pg/lib/client.js _getPassword); @types/pg omits the argument.
    password: (async (params: object) => {
      const token = await tokenForLogin() // the one connect() made sure of: from the cache
      loginTokens.set(params, token)
      return token.token
    }) as unknown as () => Promise<string>,
    max: options.poolSize,
    // The connection timeout covers the password function: leave room for a token fetch (AZURE_TOKEN_TIMEOUT_MS).
    connectionTimeoutMillis: Math.max(5_000, options.tokenTimeoutMs + 2_000),
    query_timeout: 30_000,
    idleTimeoutMillis: 30_000,
    types: options.types
  })
  // As in open.ts: a connection dropping never crashes the process (an idle client's error comes to the pool,
  // a checked-out client's to the client itself).
  pool.on('error', () => {})
  pool.on('connect', client => {
    client.on('error', () => {})
    const token = loginTokens.get((client as unknown as { connectionParameters: object }).connectionParameters)
    if (token === undefined) return
    const lifetimeMs = token.expiresOnMs - token.obtainedAtMs
    const timer = setTimeout(() => {
      expiring.add(client)
      // Idle in the pool: an idle client emitting 'error' is removed from the pool (and ended) by pg-pool.
      if (!checkedOut.has(client)) client.emit('error', new Error('database: login token about to expire; connection recycled'))
      recycled++
    }, Math.max(0, token.expiresOnMs - refreshMargin(lifetimeMs) - now()))
    timer.unref()
    client.once('end', () => { clearTimeout(timer) })
  })

  log.info({ user: url.username, host: url.hostname, scope: tokens.scope, ca: options.ca === null ? 'bundled' : 'DATABASE_CA_FILE' },
    'database: PostgreSQL logs in with the managed identity\'s token, TLS verified')
  let refusedLogged = 0
  const connect = async (): Promise<PostgresPoolClient> => {
    // A client whose token is about to expire is dropped, not handed out; at most the whole pool once.
    for (let attempt = 0; ; attempt++) {
      // The token first, then the connection: no socket to the server (a backend waiting in authentication) while
      // the identity endpoint is slow or down; and a refresh happens before the login, not during it.
      await tokenForLogin()
      let client: pg.PoolClient
      try {
        client = await pool.connect()
      } catch (err) {
        if ((err as { code?: unknown }).code === '28P01') {
          // The server refused the token: the role's name, or its principal, or the server's Entra settings.
          if (refusedLogged++ % 100 === 0) {
            log.error({ user: url.username, host: url.hostname, sqlstate: '28P01', refused: refusedLogged },
              'database: PostgreSQL refused the Microsoft Entra ID token (28P01 password authentication failed): check that DATABASE_URL\'s user is the ' +
              'identity\'s name as created by pgaadauth_create_principal, and that the server accepts Microsoft Entra authentication')
          }
          // Ask for a new token for the next connection (at most one fetch per retry delay).
          tokens.getAccessToken({ minValidityMs: Number.POSITIVE_INFINITY }).catch(() => {})
        }
        throw err
      }
      if (expiring.has(client) && attempt <= options.poolSize) {
        client.release(true)
        continue
      }
      checkedOut.add(client)
      const release = client.release.bind(client)
      const wrapped = client as PostgresPoolClient & { release: (err?: Error | boolean) => void }
      wrapped.release = (err?: Error | boolean) => {
        checkedOut.delete(client)
        release(err ?? (expiring.has(client) ? true : undefined))
      }
      return wrapped
    }
  }

  return {
    connect,
    end: async () => { await pool.end() },
    recycled: () => recycled
  }
}
