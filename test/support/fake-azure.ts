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
import { randomUUID } from 'node:crypto'
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

/**
 * A batch's fate, decided once at create: refused with a 400 `token_limit_exceeded` (the fail-fast quota refusal;
 * no batch made), made but its reply dropped (the connection reset: the adoption case), made but its reply held
 * until the connection closes (the caller dies waiting: a kill -9 after the create reached Azure), failed or expired
 * once its in-progress time is up, a cancel that stays `cancelling` until `advanceBatch(id, 'cancelled')`, or normal.
 */
export type BatchFault = 'ok' | 'token_limit_exceeded' | 'drop-reply' | 'hold-reply' | 'failed' | 'expired' | 'cancel-slow'

/** An uploaded file's fate: normal, stored but its reply dropped (or held until the connection closes), or `error` when processed. */
export type FileFault = 'ok' | 'drop-reply' | 'hold-reply' | 'error'

/** How long a batch spends in each status, from its creation (all 0: complete at the first read after create). */
export interface BatchTimeline {
  validatingMs: number
  inProgressMs: number
  finalizingMs: number
  /** From the cancel to `cancelled`. */
  cancellingMs: number
}

export interface BatchRequestRecord {
  method: string
  path: string
  apiVersion: string | null
  authorization: string | undefined
  apiKeyHeader: string | undefined
  at: number
}

interface BatchLine { custom_id: string, url: string, body: any }

interface FakeFile {
  id: string
  filename: string
  purpose: string
  content: Buffer
  created_at: number
  status: 'pending' | 'processed' | 'error'
  expires_after_seconds: number | null
  fault: FileFault
}

interface FakeBatch {
  id: string
  object: 'batch'
  endpoint: string
  input_file_id: string
  completion_window: string
  status: string
  errors: { object: 'list', data: Array<{ code: string, message: string, line: number | null }> } | null
  output_file_id: string | null
  error_file_id: string | null
  created_at: number
  in_progress_at?: number
  finalizing_at?: number
  completed_at?: number
  failed_at?: number
  expired_at?: number
  cancelling_at?: number
  cancelled_at?: number
  request_counts: { total: number, completed: number, failed: number }
  metadata: Record<string, string> | null
  // The fake's own, not shown:
  createdMs: number
  lines: BatchLine[]
  validationErrors: Array<{ code: string, message: string, line: number | null }>
  fault: BatchFault
  context: { apiVersion: string, authorization: string }
  forced: string | undefined
  settling: Promise<void> | undefined
  cancellingMs: number
}

export interface ChatRequestRecord {
  url: string
  path: string
  deployment: string | null
  apiVersion: string | null
  authorization: string | undefined
  apiKeyHeader: string | undefined
  body: any
  /** When the body had been read and parsed (ms since the epoch). */
  at: number
  /** When the request's handler started, before its body was read: a latency counted from here includes the fake's own work. */
  receivedAt: number
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

  /** Models a batch line may name (Global Batch deployments); any other fails validation with model_not_found. */
  readonly batchDeployments = new Set<string>(['gpt-4o-batch'])
  batchTimeline: BatchTimeline = { validatingMs: 0, inProgressMs: 0, finalizingMs: 0, cancellingMs: 0 }
  /** Each batch create's fate (see BatchFault). */
  batchFault: (create: { index: number, inputFileId: string, metadata: Record<string, string> | null }) => BatchFault = () => 'ok'
  fileFault: (index: number) => FileFault = () => 'ok'
  /**
   * A file's content read number `read` (0 first) of that file: null sends it whole; a number sends that many
   * lines, then holds the rest until the connection closes (a reader killed halfway through the results).
   */
  contentHold: (file: { id: string, filename: string, purpose: string }, read: number) => number | null = () => null
  /** Azure's limit of lines per batch file (too_many_tasks beyond). */
  maxBatchLines = 100_000
  /** Show batches as Azure's REST doc does: "Validating" and ISO times (Azure's spec: lower case and unix seconds). */
  batchIsoTimes = false
  /** Every files/batches request, for the URL shape and auth checks. */
  readonly batchRequests: BatchRequestRecord[] = []
  /** Each answered batch line, as a chat request (what `chatFault` saw). */
  readonly batchLineRequests: ChatRequestRecord[] = []
  /** Batches made (a refused create is not one), create requests, files uploaded, cancels, list pages served. */
  batchCreates = 0
  batchCreateAttempts = 0
  fileCreates = 0
  batchCancels = 0
  listPages = 0
  readonly deletedFiles: string[] = []
  /** How many times each custom_id was submitted in a created batch: the exactly-once check (all 1). */
  readonly customIdsSubmitted = new Map<string, number>()

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
  readonly #files = new Map<string, FakeFile>()
  readonly #batches = new Map<string, FakeBatch>()
  readonly #contentReads = new Map<string, number>()
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
    // Files and batches are never under /deployments/{name}/ (a client built with a deployment sends them there: 404).
    const batchPath = /^\/openai(?:\/v1)?(\/(?:files|batches)(?:\/[^?]*)?)$/.exec(url.pathname)
    if (batchPath !== null) return await this.#batchApi(req, res, url, batchPath[1]!)
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
    const receivedAt = Date.now()
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
      at: Date.now(),
      receivedAt
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
        default: {
          const reply = this.#reply(record, fault)
          return json(res, reply.status, reply.body, reply.headers)
        }
      }
    } finally {
      this.inFlightChats--
    }
  }

  /** What a chat call is answered with (online, or one batch line): the same code for both, so answers match. */
  #reply (record: ChatRequestRecord, fault: Exclude<ChatFault, { kind: 'hang' | 'reset' }>): { status: number, body: unknown, headers?: Record<string, string> } {
    switch (fault.kind) {
      case 'status': {
        const headers: Record<string, string> = {}
        if (fault.retryAfter) headers['retry-after'] = fault.retryAfter
        if (fault.retryAfterMs) headers['retry-after-ms'] = fault.retryAfterMs
        return { status: fault.status, body: { error: { code: String(fault.status), message: `fake status ${fault.status}` } }, headers }
      }
      case 'permission-denied':
        return { status: 401, body: { error: { code: 'PermissionDenied', message: 'Principal does not have access to API/Operation.' } } }
      case 'content-filter-prompt':
        return {
          status: 400,
          body: {
            error: {
              message: 'The response was filtered due to the prompt triggering Azure OpenAI\'s content management policy.',
              type: null,
              param: 'prompt',
              code: 'content_filter',
              status: 400,
              innererror: { code: 'ResponsibleAIPolicyViolation', content_filter_result: { violence: { filtered: true, severity: 'high' } } }
            }
          }
        }
      case 'content-filter-completion':
        return { status: 200, body: completion(record, '', 'content_filter') }
      case 'ok': {
        const structured = fault.structured ?? { ...DEFAULT_ANSWER, answer: fault.answer ?? DEFAULT_ANSWER.answer }
        return {
          status: 200,
          body: completion(record, JSON.stringify(structured), 'stop', 'usage' in fault
            ? { usage: fault.usage }
            : this.usageByDetail ? { usage: usageOfImage(record) } : {})
        }
      }
      case 'refusal':
        return { status: 200, body: completion(record, null, 'stop', {}, fault.refusal ?? 'I\'m sorry, but I can\'t help with that request.') }
      case 'invalid-json':
        return { status: 200, body: completion(record, fault.content ?? '{"answer": "A green tractor", "vehicles": [{"category": "TRAC', fault.finishReason ?? 'stop') }
      case 'schema-violation': {
        const content = fault.content ?? { ...DEFAULT_ANSWER, vehicles: [{ ...DEFAULT_ANSWER.vehicles[0], category: 'SPACESHIP' }] }
        return { status: 200, body: completion(record, JSON.stringify(content), 'stop') }
      }
    }
  }

  // ---- Files and batches (Global Batch): /openai/{files,batches}… (dated, ?api-version) and /openai/v1/… ----

  async #batchApi (req: IncomingMessage, res: ServerResponse, url: URL, path: string): Promise<void> {
    const v1 = url.pathname.startsWith('/openai/v1/')
    const apiVersion = url.searchParams.get('api-version')
    const authorization = req.headers.authorization
    const apiKeyHeader = req.headers['api-key'] as string | undefined
    this.batchRequests.push({ method: req.method ?? '', path: url.pathname, apiVersion, authorization, apiKeyHeader, at: Date.now() })
    if (!v1 && apiVersion === null) {
      return json(res, 400, { error: { code: 'BadRequest', message: 'The api-version query parameter (?api-version=) is required for all requests.' } })
    }
    const bearer = /^Bearer (.+)$/.exec(authorization ?? '')?.[1]
    if (!bearer || !this.isValidToken(bearer)) {
      return json(res, 401, { error: { code: '401', message: 'Access token is missing, invalid, audience is incorrect, or have expired.' } })
    }
    const context = { apiVersion: v1 ? 'v1' : apiVersion!, authorization: authorization! }
    const method = req.method
    let match: RegExpExecArray | null
    if (method === 'POST' && path === '/files') return await this.#uploadFile(req, res)
    if (method === 'GET' && path === '/files') return this.#list(res, url, [...this.#files.values()].filter(f => !url.searchParams.get('purpose') || f.purpose === url.searchParams.get('purpose')).map(f => this.#fileJson(f)))
    if ((match = /^\/files\/([^/]+)$/.exec(path)) !== null) {
      const file = this.#files.get(decodeURIComponent(match[1]!))
      if (file === undefined) return json(res, 404, { error: { code: '404', message: 'File not found.' } })
      if (method === 'GET') {
        const body = this.#fileJson(file)
        if (file.status === 'pending') file.status = file.fault === 'error' ? 'error' : 'processed' // processed on the next read
        return json(res, 200, body)
      }
      if (method === 'DELETE') {
        this.#files.delete(file.id)
        this.deletedFiles.push(file.id)
        return json(res, 200, { id: file.id, object: 'file', deleted: true })
      }
    }
    if (method === 'GET' && (match = /^\/files\/([^/]+)\/content$/.exec(path)) !== null) {
      const file = this.#files.get(decodeURIComponent(match[1]!))
      if (file === undefined) return json(res, 404, { error: { code: '404', message: 'File not found.' } })
      const read = this.#contentReads.get(file.id) ?? 0
      this.#contentReads.set(file.id, read + 1)
      const holdAfter = this.contentHold({ id: file.id, filename: file.filename, purpose: file.purpose }, read)
      const end = holdAfter === null ? file.content.length : endOfLines(file.content, holdAfter)
      res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': file.content.length })
      // Streamed in pieces, as a large file would be.
      for (let at = 0; at < end; at += 65_536) {
        if (!res.write(file.content.subarray(at, Math.min(end, at + 65_536)))) await once(res, 'drain')
      }
      if (end < file.content.length) { this.#hung.add(res); return }
      res.end()
      return
    }
    if (method === 'POST' && path === '/batches') return await this.#createBatch(req, res, context)
    if (method === 'GET' && path === '/batches') {
      for (const batch of this.#batches.values()) await this.#progress(batch)
      return this.#list(res, url, [...this.#batches.values()].map(b => this.#batchJson(b)))
    }
    if ((match = /^\/batches\/([^/]+)$/.exec(path)) !== null && method === 'GET') {
      const batch = this.#batches.get(decodeURIComponent(match[1]!))
      if (batch === undefined) return json(res, 404, { error: { code: '404', message: 'Batch not found.' } })
      await this.#progress(batch)
      return json(res, 200, this.#batchJson(batch))
    }
    if ((match = /^\/batches\/([^/]+)\/cancel$/.exec(path)) !== null && method === 'POST') {
      const batch = this.#batches.get(decodeURIComponent(match[1]!))
      if (batch === undefined) return json(res, 404, { error: { code: '404', message: 'Batch not found.' } })
      await this.#progress(batch)
      if (['validating', 'in_progress', 'finalizing'].includes(batch.status)) {
        batch.status = 'cancelling'
        batch.cancelling_at = nowSec()
        batch.cancellingMs = Date.now()
      }
      this.batchCancels++
      await this.#progress(batch)
      return json(res, 200, this.#batchJson(batch))
    }
    json(res, 404, { error: { code: '404', message: 'Resource not found' } })
  }

  /** A page of a list, newest first, from `after` (an id), `limit` at most (default 20, at most 100). */
  #list (res: ServerResponse, url: URL, items: Array<Record<string, unknown>>): void {
    const newestFirst = [...items].reverse()
    const after = url.searchParams.get('after')
    const limit = Math.min(100, Math.max(1, Number(url.searchParams.get('limit') ?? 20) || 20))
    const from = after === null ? 0 : newestFirst.findIndex(item => item.id === after) + 1
    const data = newestFirst.slice(from, from + limit)
    this.listPages++
    json(res, 200, { object: 'list', data, has_more: from + limit < newestFirst.length, first_id: data[0]?.id ?? null, last_id: data.at(-1)?.id ?? null })
  }

  async #uploadFile (req: IncomingMessage, res: ServerResponse): Promise<void> {
    const body = await readBody(req, MAX_UPLOAD_BYTES)
    if (body === null) return json(res, 413, { error: { code: 'FileTooLarge', message: 'The file is too large.' } })
    const form = await new Response(new Uint8Array(body), { headers: { 'content-type': String(req.headers['content-type']) } }).formData()
    const file = form.get('file')
    const purpose = form.get('purpose')
    if (!(file instanceof Blob) || purpose !== 'batch') {
      return json(res, 400, { error: { code: 'invalidPayload', message: 'A file and purpose=batch are required.' } })
    }
    const seconds = Number(form.get('expires_after[seconds]') ?? form.get('expires_after.seconds') ?? NaN)
    const fault = this.fileFault(this.fileCreates)
    this.fileCreates++
    const id = `file-${randomUUID().replace(/-/g, '')}`
    const stored: FakeFile = {
      id,
      filename: (file as File).name,
      purpose: 'batch',
      content: Buffer.from(await file.arrayBuffer()),
      created_at: nowSec(),
      status: 'pending',
      expires_after_seconds: Number.isFinite(seconds) ? seconds : null,
      fault
    }
    this.#files.set(id, stored)
    if (fault === 'drop-reply') { req.socket.destroy(); return }
    if (fault === 'hold-reply') { this.#hung.add(res); return }
    json(res, 201, this.#fileJson(stored))
  }

  #fileJson (file: FakeFile): Record<string, unknown> {
    return {
      id: file.id,
      object: 'file',
      bytes: file.content.length,
      created_at: file.created_at,
      filename: file.filename,
      purpose: file.purpose,
      status: file.status,
      ...(file.expires_after_seconds === null ? {} : { expires_at: file.created_at + file.expires_after_seconds })
    }
  }

  #addOutputFile (filename: string, lines: unknown[]): string {
    const id = `file-${randomUUID().replace(/-/g, '')}`
    const content = Buffer.from(lines.map(line => JSON.stringify(line) + '\n').join(''), 'utf8')
    this.#files.set(id, { id, filename, purpose: 'batch_output', content, created_at: nowSec(), status: 'processed', expires_after_seconds: null, fault: 'ok' })
    return id
  }

  async #createBatch (req: IncomingMessage, res: ServerResponse, context: { apiVersion: string, authorization: string }): Promise<void> {
    const raw = await readBody(req, 1_000_000)
    let body: any
    try { body = JSON.parse(String(raw)) } catch { return json(res, 400, { error: { code: 'invalid_request', message: 'not JSON' } }) }
    const input = this.#files.get(String(body?.input_file_id))
    if (input === undefined) return json(res, 400, { error: { code: 'invalid_request', message: 'input_file_id does not exist' } })
    if (body.completion_window !== '24h') return json(res, 400, { error: { code: 'invalid_request', message: 'completion_window must be 24h' } })
    if (body.endpoint !== '/chat/completions' && body.endpoint !== '/v1/chat/completions') {
      return json(res, 400, { error: { code: 'invalid_request', message: `unsupported endpoint ${String(body.endpoint)}` } })
    }
    const index = this.batchCreateAttempts++
    const fault = this.batchFault({ index, inputFileId: input.id, metadata: body.metadata ?? null })
    if (fault === 'token_limit_exceeded') {
      return json(res, 400, { error: { code: 'token_limit_exceeded', message: 'Enqueued token limit reached for this deployment (fail fast): token_limit_exceeded. Try again once current batches complete.' } })
    }
    const id = `batch_${randomUUID()}`
    const { lines, errors } = validateBatchInput(input.content, this.batchDeployments, this.maxBatchLines)
    const batch: FakeBatch = {
      id,
      object: 'batch',
      endpoint: body.endpoint,
      input_file_id: input.id,
      completion_window: '24h',
      status: 'validating',
      errors: null,
      output_file_id: null,
      error_file_id: null,
      created_at: nowSec(),
      request_counts: { total: 0, completed: 0, failed: 0 },
      metadata: body.metadata ?? null,
      createdMs: Date.now(),
      lines,
      validationErrors: errors,
      fault,
      context,
      forced: undefined,
      settling: undefined,
      cancellingMs: 0
    }
    this.#batches.set(id, batch)
    this.batchCreates++
    for (const line of lines) this.customIdsSubmitted.set(line.custom_id, (this.customIdsSubmitted.get(line.custom_id) ?? 0) + 1)
    if (fault === 'drop-reply') { req.socket.destroy(); return }
    if (fault === 'hold-reply') { this.#hung.add(res); return }
    json(res, 200, this.#batchJson(batch))
  }

  /**
   * Moves a batch to a status at once (validating → in_progress → finalizing → completed / failed / expired;
   * cancelling → cancelled), answering its lines when it completes or expires. Forward only.
   */
  async advanceBatch (id: string, status: 'in_progress' | 'finalizing' | 'completed' | 'failed' | 'expired' | 'cancelling' | 'cancelled'): Promise<void> {
    const batch = this.#batches.get(id)
    if (batch === undefined) throw new Error(`no batch ${id}`)
    if (status === 'cancelling' || status === 'cancelled') {
      if (!FINAL.has(batch.status)) {
        batch.status = 'cancelling'
        batch.cancelling_at ??= nowSec()
        batch.cancellingMs = Date.now()
      }
    }
    batch.forced = status
    await this.#progress(batch)
  }

  /** The batches made so far, oldest first (as Azure holds them). */
  get batches (): ReadonlyArray<Readonly<Record<string, unknown>>> {
    return [...this.#batches.values()].map(b => this.#batchJson(b))
  }

  /** A batch's input lines as submitted (custom_id, url, body), to check what each batch asked. */
  batchInput (id: string): ReadonlyArray<Readonly<BatchLine>> {
    const batch = this.#batches.get(id)
    if (batch === undefined) throw new Error(`no batch ${id}`)
    return batch.lines
  }

  /** Files held (input, output and error files not deleted). */
  get filesHeld (): number {
    return this.#files.size
  }

  /** A stored file's name and content, for tests that read what was uploaded. */
  fileContent (id: string): { filename: string, content: Buffer } | undefined {
    const file = this.#files.get(id)
    return file === undefined ? undefined : { filename: file.filename, content: file.content }
  }

  async #progress (batch: FakeBatch): Promise<void> {
    if (batch.settling !== undefined) { await batch.settling; return }
    batch.settling = this.#step(batch).finally(() => { batch.settling = undefined })
    await batch.settling
  }

  async #step (batch: FakeBatch): Promise<void> {
    if (FINAL.has(batch.status)) return
    const { validatingMs, inProgressMs, finalizingMs, cancellingMs } = this.batchTimeline
    const now = Date.now()
    if (batch.status === 'cancelling') {
      const slow = batch.fault === 'cancel-slow' && batch.forced !== 'cancelled'
      if (!slow && (batch.forced === 'cancelled' || now - batch.cancellingMs >= cancellingMs)) {
        batch.status = 'cancelled'
        batch.cancelled_at = nowSec()
        // Nothing was answered before the cancel (the fake answers at completion): every line is in the error file.
        batch.error_file_id = this.#addOutputFile(`${batch.id}_error.jsonl`, batch.lines.map(line => ({
          id: `batch_req_${randomUUID()}`, custom_id: line.custom_id, response: null, error: { code: 'batch_cancelled', message: 'This request was cancelled.' }
        })))
        batch.request_counts = { total: batch.lines.length, completed: 0, failed: batch.lines.length }
      }
      return
    }
    const elapsed = now - batch.createdMs
    const forced = batch.forced
    const reach = (status: string, at: number): boolean => forced === undefined ? elapsed >= at : RANK[forced]! >= RANK[status]!
    if (batch.status === 'validating') {
      if (!reach('in_progress', validatingMs)) return
      if (batch.validationErrors.length > 0 || forced === 'failed') {
        const errors = batch.validationErrors.length > 0 ? batch.validationErrors : [{ code: 'internal_error', message: 'The batch failed.', line: null }]
        return this.#fail(batch, errors)
      }
      batch.status = 'in_progress'
      batch.in_progress_at = nowSec()
      batch.request_counts = { total: batch.lines.length, completed: 0, failed: 0 }
    }
    if (batch.status === 'in_progress') {
      if (forced === 'failed' || (forced === undefined && batch.fault === 'failed' && elapsed >= validatingMs + inProgressMs)) {
        return this.#fail(batch, [{ code: 'internal_error', message: 'The batch failed while in progress.', line: null }])
      }
      if (forced === 'expired' || (forced === undefined && batch.fault === 'expired' && elapsed >= validatingMs + inProgressMs)) {
        return await this.#finish(batch, 'expired')
      }
      if (!reach('finalizing', validatingMs + inProgressMs)) return
      batch.status = 'finalizing'
      batch.finalizing_at = nowSec()
    }
    if (batch.status === 'finalizing' && reach('completed', validatingMs + inProgressMs + finalizingMs)) {
      await this.#finish(batch, 'completed')
    }
  }

  #fail (batch: FakeBatch, errors: Array<{ code: string, message: string, line: number | null }>): void {
    batch.status = 'failed'
    batch.failed_at = nowSec()
    batch.errors = { object: 'list', data: errors }
  }

  /** Answers the lines (all of them; an expired batch its first half, the rest `batch_expired`), output lines shuffled. */
  async #finish (batch: FakeBatch, status: 'completed' | 'expired'): Promise<void> {
    const answered = status === 'completed' ? batch.lines : batch.lines.slice(0, Math.floor(batch.lines.length / 2))
    const output: unknown[] = []
    const errors: unknown[] = []
    for (const line of answered) {
      const reply = await this.#answerLine(batch, line)
      if (reply === null) continue // hang or reset: the line is missing from both files
      const entry = { id: `batch_req_${randomUUID()}`, custom_id: line.custom_id, response: { status_code: reply.status, request_id: randomUUID(), body: reply.body }, error: null }
      if (reply.status === 200) output.push(entry)
      else errors.push(entry)
    }
    if (status === 'expired') {
      for (const line of batch.lines.slice(answered.length)) {
        errors.push({ id: `batch_req_${randomUUID()}`, custom_id: line.custom_id, response: null, error: { code: 'batch_expired', message: 'This request could not be executed before the completion window expired.' } })
      }
    }
    shuffle(output)
    shuffle(errors)
    batch.output_file_id = this.#addOutputFile(`${batch.id}_output.jsonl`, output)
    // A completed batch always has an error file, possibly empty.
    batch.error_file_id = this.#addOutputFile(`${batch.id}_error.jsonl`, errors)
    batch.request_counts = { total: batch.lines.length, completed: output.length, failed: batch.lines.length - output.length }
    batch.status = status
    if (status === 'completed') batch.completed_at = nowSec()
    else batch.expired_at = nowSec()
  }

  async #answerLine (batch: FakeBatch, line: BatchLine): Promise<{ status: number, body: unknown } | null> {
    const record: ChatRequestRecord = {
      url: line.url,
      path: line.url,
      deployment: String(line.body?.model ?? ''),
      apiVersion: batch.context.apiVersion,
      authorization: batch.context.authorization,
      apiKeyHeader: undefined,
      body: line.body,
      at: Date.now(),
      receivedAt: Date.now()
    }
    const index = this.batchLineRequests.push(record) - 1
    const formatProblem = responseFormatProblem(line.body?.response_format)
    if (formatProblem !== undefined) {
      this.badResponseFormats++
      return { status: 400, body: { error: { code: 'invalid_request_error', param: 'response_format', message: `fake Azure: ${formatProblem}` } } }
    }
    const fault = await this.chatFault(record, index)
    if (fault.kind === 'hang' || fault.kind === 'reset') return null
    return this.#reply(record, fault)
  }

  #batchJson (batch: FakeBatch): Record<string, unknown> {
    const { createdMs, lines, validationErrors, fault, context, forced, settling, cancellingMs, ...visible } = batch
    if (!this.batchIsoTimes) return { ...visible }
    // As Azure's REST doc shows them: the status capitalised, times as ISO strings.
    const shown: Record<string, unknown> = { ...visible, status: visible.status.charAt(0).toUpperCase() + visible.status.slice(1) }
    for (const [key, value] of Object.entries(visible)) {
      if (key.endsWith('_at') && typeof value === 'number') shown[key] = new Date(value * 1000).toISOString()
    }
    return shown
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

const FINAL = new Set(['completed', 'failed', 'expired', 'cancelled'])
const RANK: Record<string, number> = {
  validating: 0, in_progress: 1, finalizing: 2, completed: 3, failed: 3, expired: 3, cancelling: 3, cancelled: 3
}
/** Azure's limit per batch input file. */
const MAX_BATCH_FILE_BYTES = 200 * 1024 * 1024
/** What the fake reads of an upload (a little over Azure's limit, so the limit is checked at validation). */
const MAX_UPLOAD_BYTES = MAX_BATCH_FILE_BYTES + 10 * 1024 * 1024

const nowSec = (): number => Math.floor(Date.now() / 1000)

async function readBody (req: IncomingMessage, max: number): Promise<Buffer | null> {
  const chunks: Buffer[] = []
  let size = 0
  for await (const chunk of req) {
    size += (chunk as Buffer).length
    if (size > max) return null
    chunks.push(chunk as Buffer)
  }
  return Buffer.concat(chunks)
}

function shuffle (items: unknown[]): void {
  for (let i = items.length - 1; i > 0; i--) {
    const j = Math.floor(Math.random() * (i + 1))
    ;[items[i], items[j]] = [items[j], items[i]]
  }
}

/** Azure's checks of a batch input file (shared docs, global batch §1.2): the errors, or the lines to run. */
function validateBatchInput (
  content: Buffer, deployments: ReadonlySet<string>, maxLines: number
): { lines: BatchLine[], errors: Array<{ code: string, message: string, line: number | null }> } {
  const fail = (code: string, message: string, line: number | null = null) => ({ lines: [], errors: [{ code, message, line }] })
  if (content.length > MAX_BATCH_FILE_BYTES) return fail('invalid_request', 'The input file is larger than 200 MB.')
  if (content[0] === 0xef && content[1] === 0xbb && content[2] === 0xbf) return fail('invalid_json_line', 'The input file starts with a byte order mark.', 1)
  const texts = content.toString('utf8').split('\n').filter(text => text.trim() !== '')
  if (texts.length === 0) return fail('invalid_request', 'The input file is empty.')
  if (texts.length > maxLines) return fail('too_many_tasks', `The input file has more than ${maxLines} requests.`)
  const lines: BatchLine[] = []
  const ids = new Set<string>()
  for (const [index, text] of texts.entries()) {
    let line: any
    try { line = JSON.parse(text) } catch { return fail('invalid_json_line', 'A line is not valid JSON.', index + 1) }
    if (typeof line?.custom_id !== 'string' || line.method !== 'POST' || typeof line.url !== 'string' || typeof line.body !== 'object' || line.body === null) {
      return fail('invalid_json_line', 'A line lacks custom_id, method POST, url or body.', index + 1)
    }
    if (ids.has(line.custom_id)) return fail('duplicate_custom_id', 'custom_id values must be unique.', index + 1)
    ids.add(line.custom_id)
    if (lines.length > 0 && line.url !== lines[0]!.url) return fail('url_mismatch', 'Every line must have the same url.', index + 1)
    if (lines.length > 0 && line.body.model !== lines[0]!.body.model) return fail('model_mismatch', 'Every line must use the same deployment.', index + 1)
    if (!deployments.has(line.body.model)) return fail('model_not_found', `The model ${String(line.body.model)} is not a Global Batch deployment.`, index + 1)
    lines.push({ custom_id: line.custom_id, url: line.url, body: line.body })
  }
  return { lines, errors: [] }
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
    // Every answer keeps the latency, the `unknown` one included (it passed before only on a slow machine).
    if (answers === undefined) return options.unknown !== undefined ? { ...latency, ...options.unknown } as ChatFault : { kind: 'status', status: 422, ...latency }
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

/** Where the first `lines` lines of a JSONL buffer end (its length when it has fewer). */
function endOfLines (content: Buffer, lines: number): number {
  let end = 0
  for (let i = 0; i < lines; i++) {
    const newline = content.indexOf(0x0a, end)
    if (newline === -1) return content.length
    end = newline + 1
  }
  return end
}
