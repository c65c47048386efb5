// A loopback stand-in for Azure that speaks the real protocols, so the real @azure/identity and
// openai code paths run against it:
//  - the App Service managed-identity endpoint: GET /msi/token?api-version=2019-08-01&resource=…
//    with the `x-identity-header` secret, answering { access_token, expires_on, token_type, resource };
//  - Azure OpenAI chat completions on both URL shapes: POST /openai/v1/chat/completions (v1 API) and
//    POST /openai/deployments/{deployment}/chat/completions?api-version=… (dated versions),
//    checking the Bearer token and the structured-output `response_format` (json_schema, strict, our
//    schema's name), recording each request, answering with structured JSON content, and injecting faults.
// Tokens are opaque strings by default; `tokenShape: 'jwt'` mints them shaped like Entra's (HS256 JWTs with oid,
// tid, aud, iat, nbf, exp), per identity (`identities`, picked by the `client_id` query parameter), and `onMint`
// runs (awaited) before each token is handed out: the tests' PostgreSQL and Redis set it as a password there.
// For ADAPTIVE detail: `detailAwareAnswers` answers by the sent image's colour and detail, and
// `usageByDetail` charges image tokens as the tile rule does.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import type { AddressInfo, Socket } from 'node:net'
import { once } from 'node:events'
import { imageSize } from 'image-size'
import sharp from 'sharp'
import { SignJWT } from 'jose'
import { ANSWER_SCHEMA_NAME, type VisionAnswer } from '../../src/vision/answer-schema.ts'
import { estimateImageTokens } from '../../src/image/tokens.ts'

/** What the fake answers by default: JSON of the requested shape. */
export const DEFAULT_ANSWER: VisionAnswer = {
  answer: 'A green tractor: John Deere 6R series.',
  vehicles: [{
    category: 'TRACTOR',
    kind: 'MACHINE',
    make: 'John Deere',
    model: '6R series',
    confidence: 'HIGH',
    evidence: ['green and yellow livery', 'JOHN DEERE lettering on the bonnet', '6R badge on the side panel']
  }],
  imageQuality: 'CLEAR'
}

export type ChatFault =
  /**
   * A structured answer: DEFAULT_ANSWER, with `answer` (its text) or `structured` (the whole object) replaced;
   * `usage` replaces the usage object of the answer (`undefined` leaves it out, e.g. to send malformed shapes).
   */
  | { kind: 'ok', latencyMs?: number, answer?: string, structured?: VisionAnswer, usage?: unknown }
  /** The model declines: `message.refusal` set, `content` null. */
  | { kind: 'refusal', refusal?: string }
  /** Content that is not JSON (e.g. cut off, or prose); `finishReason` defaults to `stop`. */
  | { kind: 'invalid-json', content?: string, finishReason?: string }
  /** JSON that does not match the schema (by default a category outside the enum); `content` replaces it. */
  | { kind: 'schema-violation', content?: unknown }
  | { kind: 'status', status: number, retryAfter?: string, retryAfterMs?: string, latencyMs?: number }
  | { kind: 'permission-denied' }
  | { kind: 'content-filter-prompt' }
  | { kind: 'content-filter-completion' }
  | { kind: 'hang' }
  /** The connection is destroyed before any answer (a reset). */
  | { kind: 'reset' }

export type TokenFault = 'ok' | 'hang' | 'error'

/** A managed identity the fake's endpoint issues tokens for: its object id (the token's `oid`) and its name. */
export interface FakeIdentity {
  oid: string
  name: string
}

/** What `onMint` is told before a token is handed out. */
export interface MintedToken {
  token: string
  /** The token's audience: the scope without `/.default`. */
  resource: string
  identity: FakeIdentity
  /** The `client_id` asked for, or 'system'. */
  clientId: string
  expiresOnMs: number
}

/** The tenant in every JWT the fake mints. */
export const FAKE_TENANT_ID = '72f988bf-0000-4000-8000-00000000fa6e'

export interface ChatRequestRecord {
  url: string
  path: string
  deployment: string | null
  apiVersion: string | null
  authorization: string | undefined
  apiKeyHeader: string | undefined
  body: any
  at: number
}

export interface FakeAzureOptions {
  identityHeader?: string
  /** Lifetime of issued tokens in seconds (default one day, as managed identity gives). */
  tokenLifetimeSec?: number
  /**
   * Another fake whose identity endpoint issues the tokens this one accepts: several fakes standing for
   * deployments in several regions, one managed identity (one token for all, as in Azure).
   */
  trustTokensFrom?: FakeAzure
  /** 'opaque' (default: fake-access-token-<n>-exp<s>) or 'jwt' (shaped like Entra's, see the header). */
  tokenShape?: 'opaque' | 'jwt'
  /** Identities by client_id ('system' for the system-assigned one, used when no client_id is asked). */
  identities?: Record<string, FakeIdentity>
  /** Awaited before each token reply (a rotation of a server's password); a failure answers 500. */
  onMint?: (minted: MintedToken) => Promise<void> | void
}

const DEFAULT_IDENTITY: FakeIdentity = { oid: '00000000-0000-4000-8000-0000000000a1', name: 'agrivision-identity' }
/** The fake's signing key: these JWTs are checked by nobody but the tests. */
const JWT_KEY = new TextEncoder().encode('fake-azure-signing-key-for-tests-only')

export class FakeAzure {
  readonly identityHeader: string
  tokenLifetimeSec: number
  tokenFault: TokenFault = 'ok'
  tokenLatencyMs = 0
  tokenShape: 'opaque' | 'jwt'
  /** A fault for one resource only (the audience, e.g. https://redis.azure.com), before `tokenFault`. */
  readonly tokenFaultByResource = new Map<string, TokenFault>()
  /** Most connections that carried a token request for each resource open at once. */
  readonly maxOpenTokenSocketsByResource = new Map<string, number>()
  #tokenSocketsByResource = new Map<string, Set<Socket>>()
  readonly identities: Map<string, FakeIdentity>
  onMint: ((minted: MintedToken) => Promise<void> | void) | undefined
  /** Tokens minted, in order, with who they are for. */
  readonly minted: MintedToken[] = []
  /** Decides each chat call's fate (it may look at the request, e.g. decode its image); default: answer at once. */
  chatFault: (request: ChatRequestRecord, index: number) => ChatFault | Promise<ChatFault> = () => ({ kind: 'ok' })
  /**
   * Charge prompt tokens by what was sent, as Azure does: USAGE_TEXT_TOKENS, plus 85 at detail "low", else the tile
   * rule's high-detail estimate of the sent image's size. Off by default: the usual usage is a constant
   * 1000 + the number of messages (the numbers existing tests assert).
   */
  usageByDetail = false

  readonly tokenRequests: Array<{ url: string, resource: string | null, headerOk: boolean, at: number }> = []
  readonly chatRequests: ChatRequestRecord[] = []
  /** Tokens issued, with their expiry (ms). */
  readonly issued = new Map<string, number>()
  inFlightChats = 0
  /** Chat requests refused (400) because their response_format was not our structured output. */
  badResponseFormats = 0
  maxInFlightChats = 0
  /** Token requests not answered yet (hung ones included), and the most at once. */
  outstandingTokenRequests = 0
  maxOutstandingTokenRequests = 0
  /** Most connections that carried a token request open at once (server side). */
  maxOpenTokenSockets = 0

  #server: Server
  #sockets = new Set<Socket>()
  #hung = new Set<ServerResponse>()
  #tokenSockets = new Set<Socket>()
  #tokenSerial = 0
  #issuer: FakeAzure | undefined
  #port = 0

  constructor (options: FakeAzureOptions = {}) {
    this.identityHeader = options.identityHeader ?? 'fake-identity-header-secret'
    this.tokenLifetimeSec = options.tokenLifetimeSec ?? 86_400
    this.#issuer = options.trustTokensFrom
    this.tokenShape = options.tokenShape ?? 'opaque'
    this.identities = new Map(Object.entries(options.identities ?? { system: DEFAULT_IDENTITY }))
    this.onMint = options.onMint
    this.#server = createServer((req, res) => { this.#handle(req, res).catch(err => { res.statusCode = 500; res.end(String(err)) }) })
    this.#server.on('connection', socket => {
      this.#sockets.add(socket)
      socket.once('close', () => this.#sockets.delete(socket))
    })
  }

  async start (): Promise<this> {
    this.#server.listen(this.#port, '127.0.0.1')
    await once(this.#server, 'listening')
    this.#port = (this.#server.address() as AddressInfo).port
    return this
  }

  /** Stops listening (connections are refused, as by a region that is down) until `start()` listens on the same port again. */
  async stopListening (): Promise<void> {
    this.releaseHung()
    for (const socket of this.#sockets) socket.destroy()
    this.#server.close()
    await once(this.#server, 'close')
  }

  get listening (): boolean {
    return this.#server.listening
  }

  get origin (): string {
    return `http://127.0.0.1:${this.#port}`
  }

  /** Environment for DefaultAzureCredential to use this fake as its App Service identity endpoint. */
  identityEnv (): Record<string, string> {
    return {
      IDENTITY_ENDPOINT: `${this.origin}/msi/token`,
      IDENTITY_HEADER: this.identityHeader,
      AZURE_TOKEN_CREDENTIALS: 'ManagedIdentityCredential'
    }
  }

  /** Point this process's @azure/identity at the fake, clearing anything that would pick another source. */
  applyIdentityEnv (env: NodeJS.ProcessEnv = process.env): void {
    for (const name of ['IDENTITY_SERVER_THUMBPRINT', 'MSI_ENDPOINT', 'MSI_SECRET', 'IMDS_ENDPOINT', 'AZURE_POD_IDENTITY_AUTHORITY_HOST',
      'AZURE_CLIENT_SECRET', 'AZURE_CLIENT_CERTIFICATE_PATH', 'AZURE_FEDERATED_TOKEN_FILE', 'AZURE_USERNAME', 'AZURE_TENANT_ID', 'AZURE_CLIENT_ID']) {
      delete env[name]
    }
    Object.assign(env, this.identityEnv())
  }

  /** Release hung responses (e.g. when a test's outage ends). */
  releaseHung (): void {
    for (const res of this.#hung) res.destroy()
    this.#hung.clear()
  }

  async close (): Promise<void> {
    if (!this.#server.listening) return
    await this.stopListening()
  }

  /** Connections that carried a token request for this resource (audience) and are still open. */
  openTokenSocketsFor (resource: string): number {
    return this.#tokenSocketsByResource.get(resource)?.size ?? 0
  }

  /** Connections that carried a token request and are still open, as this server sees them. */
  get openTokenSockets (): number {
    return this.#tokenSockets.size
  }

  isValidToken (token: string): boolean {
    if (this.#issuer !== undefined) return this.#issuer.isValidToken(token)
    const expires = this.issued.get(token)
    return expires !== undefined && expires > Date.now()
  }

  async #handle (req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', this.origin)
    if (req.method === 'GET' && url.pathname === '/msi/token') return await this.#token(req, res, url)
    const deploymentMatch = /^\/openai\/deployments\/([^/]+)\/chat\/completions$/.exec(url.pathname)
    if (req.method === 'POST' && (url.pathname === '/openai/v1/chat/completions' || deploymentMatch)) {
      return await this.#chat(req, res, url, deploymentMatch?.[1] ?? null)
    }
    json(res, 404, { error: { code: '404', message: 'Resource not found' } })
  }

  async #token (req: IncomingMessage, res: ServerResponse, url: URL): Promise<void> {
    const headerOk = req.headers['x-identity-header'] === this.identityHeader
    const resource = url.searchParams.get('resource')
    this.tokenRequests.push({ url: url.pathname + url.search, resource, headerOk, at: Date.now() })
    const socket = req.socket
    if (!this.#tokenSockets.has(socket) && !socket.destroyed) {
      this.#tokenSockets.add(socket)
      socket.once('close', () => this.#tokenSockets.delete(socket))
      this.maxOpenTokenSockets = Math.max(this.maxOpenTokenSockets, this.#tokenSockets.size)
    }
    const audience = (resource ?? '').replace(/\/\.default$/, '')
    const forResource = this.#tokenSocketsByResource.get(audience) ?? new Set<Socket>()
    this.#tokenSocketsByResource.set(audience, forResource)
    if (!forResource.has(socket) && !socket.destroyed) {
      forResource.add(socket)
      socket.once('close', () => forResource.delete(socket))
      this.maxOpenTokenSocketsByResource.set(audience, Math.max(this.maxOpenTokenSocketsByResource.get(audience) ?? 0, forResource.size))
    }
    this.outstandingTokenRequests++
    this.maxOutstandingTokenRequests = Math.max(this.maxOutstandingTokenRequests, this.outstandingTokenRequests)
    res.once('close', () => { this.outstandingTokenRequests-- })
    if (this.tokenLatencyMs > 0) await sleep(this.tokenLatencyMs)
    const fault = this.tokenFaultByResource.get(audience) ?? this.tokenFault
    if (fault === 'hang') { this.#hung.add(res); return }
    if (fault === 'error') return json(res, 500, { error: 'unavailable', error_description: 'identity endpoint is down' })
    if (!headerOk) return json(res, 401, { error: 'invalid_request', error_description: 'missing or wrong x-identity-header' })
    if (url.searchParams.get('api-version') !== '2019-08-01' || !resource) {
      return json(res, 400, { error: 'invalid_request', error_description: 'api-version=2019-08-01 and resource are required' })
    }
    const clientId = url.searchParams.get('client_id') ?? 'system'
    const identity = this.identities.get(clientId)
    if (identity === undefined) return json(res, 400, { error: 'invalid_request', error_description: `no identity with client_id ${clientId}` })
    const nowSec = Math.floor(Date.now() / 1000)
    const expiresOnSec = nowSec + this.tokenLifetimeSec
    const serial = ++this.#tokenSerial
    const token = this.tokenShape === 'jwt'
      ? await new SignJWT({ oid: identity.oid, tid: FAKE_TENANT_ID, name: identity.name, xms_mirid: identity.name, uti: `fake-${serial}` })
        .setProtectedHeader({ alg: 'HS256', typ: 'JWT' })
        .setAudience(audience)
        .setIssuer(`https://sts.windows.net/${FAKE_TENANT_ID}/`)
        .setSubject(identity.oid)
        .setIssuedAt(nowSec)
        .setNotBefore(nowSec)
        .setExpirationTime(expiresOnSec)
        .sign(JWT_KEY)
      : `fake-access-token-${serial}-exp${expiresOnSec}`
    const minted: MintedToken = { token, resource: audience, identity, clientId, expiresOnMs: expiresOnSec * 1000 }
    try {
      await this.onMint?.(minted)
    } catch (err) {
      return json(res, 500, { error: 'unavailable', error_description: `minting failed: ${(err as Error).message}` })
    }
    this.minted.push(minted)
    this.issued.set(token, expiresOnSec * 1000)
    json(res, 200, { access_token: token, expires_on: String(expiresOnSec), token_type: 'Bearer', resource })
  }

  async #chat (req: IncomingMessage, res: ServerResponse, url: URL, deployment: string | null): Promise<void> {
    const chunks: Buffer[] = []
    for await (const chunk of req) chunks.push(chunk as Buffer)
    const record: ChatRequestRecord = {
      url: url.pathname + url.search,
      path: url.pathname,
      deployment,
      apiVersion: url.searchParams.get('api-version'),
      authorization: req.headers.authorization,
      apiKeyHeader: req.headers['api-key'] as string | undefined,
      body: JSON.parse(Buffer.concat(chunks).toString('utf8')),
      at: Date.now()
    }
    const index = this.chatRequests.push(record) - 1

    const bearer = /^Bearer (.+)$/.exec(record.authorization ?? '')?.[1]
    if (!bearer || !this.isValidToken(bearer)) {
      return json(res, 401, { error: { code: '401', message: 'Access token is missing, invalid, audience is incorrect, or have expired.' } })
    }

    const formatProblem = responseFormatProblem(record.body?.response_format)
    if (formatProblem !== undefined) {
      this.badResponseFormats++
      return json(res, 400, { error: { code: 'invalid_request_error', param: 'response_format', message: `fake Azure: ${formatProblem}` } })
    }

    this.inFlightChats++
    this.maxInFlightChats = Math.max(this.maxInFlightChats, this.inFlightChats)
    try {
      const fault = await this.chatFault(record, index)
      if ('latencyMs' in fault && fault.latencyMs) await sleep(fault.latencyMs)
      switch (fault.kind) {
        case 'hang':
          this.#hung.add(res)
          await once(res, 'close')
          return
        case 'reset':
          req.socket.destroy()
          return
        case 'status': {
          const headers: Record<string, string> = {}
          if (fault.retryAfter) headers['retry-after'] = fault.retryAfter
          if (fault.retryAfterMs) headers['retry-after-ms'] = fault.retryAfterMs
          return json(res, fault.status, { error: { code: String(fault.status), message: `fake status ${fault.status}` } }, headers)
        }
        case 'permission-denied':
          return json(res, 401, { error: { code: 'PermissionDenied', message: 'Principal does not have access to API/Operation.' } })
        case 'content-filter-prompt':
          return json(res, 400, {
            error: {
              message: 'The response was filtered due to the prompt triggering Azure OpenAI\'s content management policy.',
              type: null,
              param: 'prompt',
              code: 'content_filter',
              status: 400,
              innererror: { code: 'ResponsibleAIPolicyViolation', content_filter_result: { violence: { filtered: true, severity: 'high' } } }
            }
          })
        case 'content-filter-completion':
          return json(res, 200, completion(record, '', 'content_filter'))
        case 'ok': {
          const structured = fault.structured ?? { ...DEFAULT_ANSWER, answer: fault.answer ?? DEFAULT_ANSWER.answer }
          return json(res, 200, completion(record, JSON.stringify(structured), 'stop', 'usage' in fault
            ? { usage: fault.usage }
            : this.usageByDetail ? { usage: usageOfImage(record) } : {}))
        }
        case 'refusal':
          return json(res, 200, completion(record, null, 'stop', {}, fault.refusal ?? 'I\'m sorry, but I can\'t help with that request.'))
        case 'invalid-json':
          return json(res, 200, completion(record, fault.content ?? '{"answer": "A green tractor", "vehicles": [{"category": "TRAC', fault.finishReason ?? 'stop'))
        case 'schema-violation': {
          const content = fault.content ?? { ...DEFAULT_ANSWER, vehicles: [{ ...DEFAULT_ANSWER.vehicles[0], category: 'SPACESHIP' }] }
          return json(res, 200, completion(record, JSON.stringify(content), 'stop'))
        }
      }
    } finally {
      this.inFlightChats--
    }
  }
}

/** Why a request's `response_format` is not the structured output we ask for, or undefined when it is. */
function responseFormatProblem (format: any): string | undefined {
  if (format?.type !== 'json_schema') return `response_format.type is ${JSON.stringify(format?.type)}, not "json_schema"`
  const schema = format.json_schema
  if (schema?.strict !== true) return 'response_format.json_schema.strict is not true'
  if (schema.name !== ANSWER_SCHEMA_NAME) return `response_format.json_schema.name is ${JSON.stringify(schema.name)}, not "${ANSWER_SCHEMA_NAME}"`
  if (schema.schema?.type !== 'object' || schema.schema.additionalProperties !== false) {
    return 'response_format.json_schema.schema is not an object schema with additionalProperties: false'
  }
  return undefined
}

function completion (
  record: ChatRequestRecord, content: string | null, finishReason: string,
  overrides: Record<string, unknown> = {}, refusal: string | null = null
) {
  return {
    id: 'chatcmpl-fake',
    object: 'chat.completion',
    created: Math.floor(Date.now() / 1000),
    model: 'gpt-4o-2024-11-20',
    choices: [{ index: 0, finish_reason: finishReason, message: { role: 'assistant', content, refusal } }],
    usage: {
      prompt_tokens: 1000 + (record.body?.messages?.length ?? 0),
      completion_tokens: 42,
      total_tokens: 1042 + (record.body?.messages?.length ?? 0)
    },
    ...overrides
  }
}

function json (res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  const text = JSON.stringify(body)
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text), ...headers })
  res.end(text)
}

function sleep (ms: number): Promise<void> {
  return new Promise(resolve => setTimeout(resolve, ms))
}

/** The text part of a request's prompt, in tokens, when the fake charges by detail (`usageByDetail`). */
export const USAGE_TEXT_TOKENS = 300
/** The completion's tokens in every answer. */
export const USAGE_COMPLETION_TOKENS = 42

/** Usage as Azure would charge it for the image this request sent: the text, plus the image by its detail and size. */
export function usageOfImage (record: ChatRequestRecord): { prompt_tokens: number, completion_tokens: number, total_tokens: number } {
  const prompt = USAGE_TEXT_TOKENS + imageTokensOf(record)
  return { prompt_tokens: prompt, completion_tokens: USAGE_COMPLETION_TOKENS, total_tokens: prompt + USAGE_COMPLETION_TOKENS }
}

/** The sent image's tokens by the tile rule: 85 at "low"; "high", "auto" or none as high detail (the worst case, as Azure). */
export function imageTokensOf (record: ChatRequestRecord): number {
  const { bytes, detail } = imageFromChat(record)
  if (detail === 'low') return 85
  const { width, height } = imageSize(bytes)
  return estimateImageTokens(width, height, 'high')
}

export interface Rgb { r: number, g: number, b: number }

/** Channel values are rounded to this step before keying: what survives the server's downscale and re-encoding. */
export const COLOUR_STEP = 16

/**
 * A colour's key in a `detailAwareAnswers` table: each channel rounded to a multiple of COLOUR_STEP. Pick
 * channels at multiples of 16 (e.g. 48, 128, 208) so noise and JPEG cannot push a mean across a rounding edge.
 */
export function colourKey ({ r, g, b }: Rgb): string {
  const round = (value: number): number => Math.round(value / COLOUR_STEP) * COLOUR_STEP
  return `${round(r)},${round(g)},${round(b)}`
}

/** The key of the image a request sent: its mean colour (sharp's stats), by colourKey. */
export async function sentColourKey (record: ChatRequestRecord): Promise<string> {
  const { channels } = await sharp(imageFromChat(record).bytes).stats()
  const [r, g, b] = channels.map(channel => channel.mean)
  return colourKey({ r: r ?? 0, g: g ?? r ?? 0, b: b ?? r ?? 0 })
}

/** A photo's two answers: what the model says when it sees it at detail "low", and at "high" (or "auto"). */
export interface AnswersByDetail {
  low: VisionAnswer
  high: VisionAnswer
}

export interface DetailAwareOptions {
  /** Latency of every answer (the same at both details). */
  latencyMs?: number
  /** What a photo whose colour is not in the table gets; default a 422 (refused, not retried), so a wrong key fails loudly. */
  unknown?: ChatFault
}

/**
 * A chatFault that answers as a model whose answer depends on how closely it looks: each request is keyed by
 * the sent image's mean colour (`sentColourKey`; make the photos with `photoOfColour`) and answered with the
 * table's `low` answer at detail "low", its `high` answer otherwise. Assign it to `fake.chatFault`.
 */
export function detailAwareAnswers (
  table: ReadonlyMap<string, AnswersByDetail>, options: DetailAwareOptions = {}
): (request: ChatRequestRecord) => Promise<ChatFault> {
  const latency = options.latencyMs === undefined ? {} : { latencyMs: options.latencyMs }
  return async request => {
    const answers = table.get(await sentColourKey(request))
    if (answers === undefined) return options.unknown ?? { kind: 'status', status: 422, ...latency }
    return { kind: 'ok', structured: imageFromChat(request).detail === 'low' ? answers.low : answers.high, ...latency }
  }
}

/** The image bytes and type carried by a recorded chat request's data URL. */
export function imageFromChat (record: ChatRequestRecord): { mimeType: string, bytes: Buffer, detail: string | undefined } {
  const parts = record.body.messages.find((m: any) => m.role === 'user').content
  const image = parts.find((p: any) => p.type === 'image_url').image_url
  const match = /^data:([^;]+);base64,(.*)$/s.exec(image.url)
  if (!match) throw new Error('not a data URL')
  return { mimeType: match[1] as string, bytes: Buffer.from(match[2] as string, 'base64'), detail: image.detail }
}
