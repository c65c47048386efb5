// A loopback stand-in for Entra ID's key discovery endpoint: serves a JWKS of RS256 public keys made
// with jose, counts fetches, rotates keys, and can fail (HTTP 500) or hang on demand.
// Also the signing side: Entra-shaped access tokens for those keys.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { exportJWK, exportSPKI, generateKeyPair, SignJWT, type CryptoKey, type JWK, type JWTPayload } from 'jose'

export interface SigningKey {
  kid: string
  privateKey: CryptoKey
  publicKey: CryptoKey
  publicJwk: JWK
}

let keyCount = 0
export async function newSigningKey (kid = `test-key-${++keyCount}`): Promise<SigningKey> {
  const { privateKey, publicKey } = await generateKeyPair('RS256', { extractable: true })
  const publicJwk = { ...(await exportJWK(publicKey)), kid, use: 'sig', kty: 'RSA' }
  return { kid, privateKey, publicKey, publicJwk }
}

/** The SPKI PEM of a key's public half: what an algorithm-confusion attacker would use as an HMAC secret. */
export async function publicPem (key: SigningKey): Promise<string> {
  return await exportSPKI(key.publicKey)
}

export type JwksFault = 'ok' | 'fail' | 'hang'

export class JwksServer {
  fetches = 0
  fault: JwksFault = 'ok'
  keys: SigningKey[] = []
  readonly #server: Server
  readonly #hung = new Set<ServerResponse>()

  constructor () {
    this.#server = createServer((req, res) => { this.#handle(req, res) })
  }

  async start (keys: SigningKey[] = []): Promise<this> {
    this.keys = keys
    await new Promise<void>(resolve => this.#server.listen(0, '127.0.0.1', resolve))
    this.#server.unref() // never keeps a test process alive
    return this
  }

  get uri (): string {
    const { port } = this.#server.address() as AddressInfo
    return `http://127.0.0.1:${port}/tenant/discovery/v2.0/keys`
  }

  /** Publishes a new key beside the current ones (Entra announces keys before it signs with them). */
  async addKey (kid?: string): Promise<SigningKey> {
    const key = await newSigningKey(kid)
    this.keys = [...this.keys, key]
    return key
  }

  /** Replaces the published keys with one new key. */
  async rotate (kid?: string): Promise<SigningKey> {
    const key = await newSigningKey(kid)
    this.keys = [key]
    return key
  }

  async close (): Promise<void> {
    for (const res of this.#hung) res.destroy()
    this.#server.closeAllConnections()
    await new Promise<void>(resolve => this.#server.close(() => resolve()))
  }

  #handle (req: IncomingMessage, res: ServerResponse): void {
    if (req.method !== 'GET' || !req.url?.endsWith('/discovery/v2.0/keys')) {
      res.writeHead(404).end()
      return
    }
    this.fetches++
    if (this.fault === 'hang') {
      this.#hung.add(res)
      res.once('close', () => this.#hung.delete(res))
      return
    }
    if (this.fault === 'fail') {
      res.writeHead(500, { 'content-type': 'application/json' }).end('{"error":"server_error"}')
      return
    }
    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ keys: this.keys.map(key => key.publicJwk) }))
  }
}

export const TENANT_ID = '72f988bf-86f1-41af-91ab-2d7cd011db47'
export const OTHER_TENANT_ID = 'f8cdef31-a31e-4b4a-93e4-5f571e91255a'
export const AUDIENCE = 'api://agrivision'
export const REQUIRED_ROLE = 'VehicleIdentification.Identify'
export const USER_OID = '00000000-0000-0000-0000-00000000a11c'
export const CLIENT_APP_ID = '11111111-2222-3333-4444-555555555555'
export const DAEMON_APP_ID = '66666666-7777-8888-9999-000000000000'

export const v2Issuer = (tenant = TENANT_ID): string => `https://login.microsoftonline.com/${tenant}/v2.0`
export const v1Issuer = (tenant = TENANT_ID): string => `https://sts.windows.net/${tenant}/`

/** Seconds since the epoch from the real clock (tests may move Date.now). */
const realDateNow = Date.now
export const nowSeconds = (): number => Math.floor(realDateNow() / 1000)

/** What every valid v2 access token of the tenant for this API carries: audience, issuer, times. */
function commonClaims (): JWTPayload {
  const now = nowSeconds()
  return { aud: AUDIENCE, iss: v2Issuer(), iat: now - 30, nbf: now - 30, exp: now + 3600, tid: TENANT_ID, ver: '2.0' }
}

/** The claims of a delegated (user) v2 access token with the required scope. */
export function userClaims (overrides: JWTPayload = {}): JWTPayload {
  return {
    ...commonClaims(),
    oid: USER_OID,
    sub: 'user-pairwise-subject',
    azp: CLIENT_APP_ID,
    name: 'Test Farmer',
    preferred_username: 'farmer@example.com',
    scp: `${REQUIRED_ROLE} User.Read`,
    ...overrides
  }
}

/** The claims of an app-only (client credentials) v2 access token with the required app role. */
export function appClaims (overrides: JWTPayload = {}): JWTPayload {
  return {
    ...commonClaims(),
    oid: '99999999-0000-0000-0000-0000000000ff',
    sub: '99999999-0000-0000-0000-0000000000ff',
    azp: DAEMON_APP_ID,
    idtyp: 'app',
    roles: [REQUIRED_ROLE],
    ...overrides
  }
}

/** A token signed RS256 with the key, `kid` in the header (or another kid, to lie). */
export async function sign (key: SigningKey, claims: JWTPayload, kid: string | undefined = key.kid): Promise<string> {
  return await new SignJWT(claims).setProtectedHeader({ alg: 'RS256', typ: 'JWT', ...(kid === undefined ? {} : { kid }) }).sign(key.privateKey)
}

export const b64url = (value: unknown): string => Buffer.from(typeof value === 'string' ? value : JSON.stringify(value)).toString('base64url')
