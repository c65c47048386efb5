// Azure OpenAI's files and batches API (Global Batch), through the real openai client, keyless: the
// managed identity's bearer token from the process's cached token provider, never an API key.
//
// Two traps shape it (docs/plans/issue-20.md, traps 8 and 9):
// - AzureOpenAI built with a `deployment` sends `/batches` to `/deployments/{name}/batches`: this client has none.
// - The SDK retries POSTs after a lost reply: a second `batches.create` would submit every custom_id twice.
//   Creates (files and batches) go out with maxRetries 0, carry the chunk's id (file name, batch metadata),
//   and before any create, and after any create that may have reached Azure, the resource is searched for it:
//   a batch or file made by a create whose reply was lost (or by an instance that died) is adopted, not made again.
import { createReadStream } from 'node:fs'
import { Readable } from 'node:stream'
import OpenAI, { APIConnectionError, APIError, AzureOpenAI, toStreamingFile } from 'openai'
import type { AzureClientOptions } from 'openai/azure'
import type { Batch, BatchCreateParams } from 'openai/resources/batches'
import type { FileObject } from 'openai/resources/files'
import { AppError, UpstreamRateLimitedError, UpstreamUnavailableError } from '../../errors.ts'
import { mapUpstreamError } from '../../vision/upstream-errors.ts'
import { redactTokens } from '../../azure/token-provider.ts'
import { splitLines, type Line } from './lines.ts'

export type BatchStatus = 'validating' | 'failed' | 'in_progress' | 'finalizing' | 'completed' | 'expired' | 'cancelling' | 'cancelled'

const STATUSES: ReadonlySet<string> = new Set<BatchStatus>(['validating', 'failed', 'in_progress', 'finalizing', 'completed', 'expired', 'cancelling', 'cancelled'])

/** A batch as we read it: status lower-cased, times in ms (Azure sends unix seconds or ISO strings), counts checked. */
export interface BatchState {
  id: string
  status: BatchStatus
  /** The chunk this batch was made for (metadata.agrivision_chunk), if it carries one. */
  chunkId: string | null
  inputFileId: string | null
  outputFileId: string | null
  errorFileId: string | null
  /** Why a batch failed (validation), cut short and redacted. */
  errors: Array<{ code: string, message: string, line: number | null }>
  requestCounts: { total: number, completed: number, failed: number }
  createdAtMs: number | null
  /** When it reached its last state (completed, failed, expired or cancelled), if it has. */
  endedAtMs: number | null
}

/** Whether a status is final: nothing more will change, and the output and error files (if any) are complete. */
export function isFinalStatus (status: BatchStatus): boolean {
  return status === 'completed' || status === 'failed' || status === 'expired' || status === 'cancelled'
}

export interface UploadedFile {
  id: string
  status: 'pending' | 'processed' | 'error' | 'deleted' | string
  bytes: number | null
}

export interface BatchClientOptions {
  /** The resource's endpoint, https://<name>.openai.azure.com (no trailing slash needed). */
  endpoint: string
  /** 'v1' (/openai/v1/…, no api-version) or a dated version (/openai/…?api-version=…). */
  apiVersion: string
  /** The process's cached token provider (src/azure/token-provider.ts); only its getToken is used. */
  tokens: { getToken: () => Promise<string> }
  /** Per HTTP request; a file upload of 190 MB needs a generous one (default 10 min). */
  timeoutMs?: number
  /** SDK retries for the idempotent calls (retrieve, list, content, cancel, delete); creates always 0. */
  maxRetries?: number
  /** How often an uploaded file's status is read until it is processed (default 2 s), and for how long (default 10 min). */
  filePollIntervalMs?: number
  fileProcessTimeoutMs?: number
  /** How many pages of 100 a search for a chunk's batch or file reads (newest first) before it gives up (default 20). */
  maxSearchPages?: number
  /** Each result line at most this long; longer ones are reported as too long, not held (default 1 MiB). */
  maxLineBytes?: number
  fetch?: typeof globalThis.fetch
}

export interface BatchClient {
  readonly apiVersion: string
  /** The `url` of every input line and the batch's `endpoint`: '/chat/completions' (dated) or '/v1/chat/completions' (v1). */
  readonly chatUrl: string
  /** The chunk's file at Azure (named by chunk id), uploaded unless one is there already, once processed. */
  uploadJsonl (path: string, chunkId: string): Promise<UploadedFile>
  findFile (chunkId: string): Promise<UploadedFile | null>
  /** The chunk's batch: adopted if one carries its id, else created (once: never retried blindly). */
  create (inputFileId: string, chunkId: string): Promise<BatchState>
  find (chunkId: string): Promise<BatchState | null>
  retrieve (batchId: string): Promise<BatchState>
  cancel (batchId: string): Promise<BatchState>
  /** A file's content, line by line, each bounded (lines.ts). */
  lines (fileId: string): AsyncIterable<Line>
  /** Deletes a file; one that is gone already counts as deleted. */
  deleteFile (fileId: string): Promise<void>
}

/** The name a chunk's input file has at Azure: how a restarted job finds it. */
export function chunkFileName (chunkId: string): string {
  return `agrivision-${chunkId}.jsonl`
}

/** The batch metadata key holding the chunk id. */
export const CHUNK_METADATA_KEY = 'agrivision_chunk'

/**
 * Files for batch input expire after 14 days, the shortest Azure allows: it lifts the 500-file limit to 10,000
 * and cleans up what we fail to delete.
 */
const FILE_EXPIRY_SECONDS = 1_209_600

export function createBatchClient (options: BatchClientOptions): BatchClient {
  const { apiVersion, tokens } = options
  const endpoint = options.endpoint.replace(/\/+$/, '')
  const timeout = options.timeoutMs ?? 600_000
  const maxRetries = options.maxRetries ?? 2
  const pollMs = options.filePollIntervalMs ?? 2_000
  const processTimeoutMs = options.fileProcessTimeoutMs ?? 600_000
  const maxPages = options.maxSearchPages ?? 20
  const maxLineBytes = options.maxLineBytes ?? 1_048_576
  const client = createClient()
  const chatUrl = apiVersion === 'v1' ? '/v1/chat/completions' : '/chat/completions'

  function createClient (): OpenAI {
    const fetch = options.fetch ?? globalThis.fetch
    if (apiVersion === 'v1') {
      // The provider function itself: the SDK calls it on every attempt.
      return new OpenAI({ baseURL: `${endpoint}/openai/v1/`, apiKey: tokens.getToken, maxRetries, timeout, fetch })
    }
    // No `deployment`: with one, the SDK would send /batches to /deployments/{name}/batches (trap 8).
    const azureOptions: AzureClientOptions = { baseURL: `${endpoint}/openai`, apiVersion, azureADTokenProvider: tokens.getToken, maxRetries, timeout, fetch }
    // An explicit null: left undefined, apiKey defaults to AZURE_OPENAI_API_KEY and the constructor throws. A key is never used.
    Object.assign(azureOptions, { apiKey: null })
    return new AzureOpenAI(azureOptions)
  }

  /** Our error for a failed call: the same codes as the online path, the words without a token. */
  async function call<T> (what: string, run: () => Promise<T>): Promise<T> {
    try {
      return await run()
    } catch (err) {
      throw batchError(what, err)
    }
  }

  async function findFile (chunkId: string): Promise<UploadedFile | null> {
    const name = chunkFileName(chunkId)
    return await call('list files', async () => {
      let page = await client.files.list({ purpose: 'batch', limit: 100 })
      for (let read = 1; ; read++) {
        const found = page.data.find(file => file.filename === name && !['error', 'deleted'].includes(String(file.status)))
        if (found !== undefined) return fileOf(found)
        if (read >= maxPages || !page.hasNextPage()) return null
        page = await page.getNextPage()
      }
    })
  }

  async function waitProcessed (file: UploadedFile): Promise<UploadedFile> {
    const deadline = Date.now() + processTimeoutMs
    let current = file
    for (let tries = 0; current.status !== 'processed'; tries++) {
      if (current.status === 'error' || current.status === 'deleted') {
        throw new UpstreamUnavailableError(`Azure OpenAI could not process the batch input file (status ${current.status}).`)
      }
      if (Date.now() >= deadline) {
        throw new UpstreamUnavailableError(`Azure OpenAI had not processed the batch input file after ${Math.round(processTimeoutMs / 1000)} s.`)
      }
      // Small files are processed in moments: look again soon, then every pollMs.
      await sleep(Math.min(pollMs, 100 * 2 ** tries))
      const id = current.id
      current = fileOf(await call('read a file', async () => await client.files.retrieve(id)))
    }
    return current
  }

  async function uploadJsonl (path: string, chunkId: string): Promise<UploadedFile> {
    const existing = await findFile(chunkId)
    if (existing !== null) return await waitProcessed(existing)
    let uploaded: UploadedFile
    try {
      // Streamed from disk (toStreamingFile never reads the file whole), without retries: a retry would upload a second copy.
      uploaded = fileOf(await client.files.create({
        file: toStreamingFile(createReadStream(path), chunkFileName(chunkId), { type: 'application/jsonl' }),
        purpose: 'batch',
        expires_after: { anchor: 'created_at', seconds: FILE_EXPIRY_SECONDS }
      }, { maxRetries: 0 }))
    } catch (err) {
      // The upload may have arrived even though its reply did not.
      if (!mayHaveArrived(err)) throw batchError('upload the batch input file', err)
      const adopted = await findFile(chunkId)
      if (adopted === null) throw batchError('upload the batch input file', err)
      uploaded = adopted
    }
    return await waitProcessed(uploaded)
  }

  async function find (chunkId: string): Promise<BatchState | null> {
    return await call('list batches', async () => {
      let page = await client.batches.list({ limit: 100 })
      for (let read = 1; ; read++) {
        const found = page.data.find(batch => isRecord(batch.metadata) && batch.metadata[CHUNK_METADATA_KEY] === chunkId)
        if (found !== undefined) return stateOf(found)
        if (read >= maxPages || !page.hasNextPage()) return null
        page = await page.getNextPage()
      }
    })
  }

  async function create (inputFileId: string, chunkId: string): Promise<BatchState> {
    const adopted = await find(chunkId)
    if (adopted !== null) return adopted
    const body = {
      input_file_id: inputFileId,
      // The typings admit only '/v1/…'; the dated API wants '/chat/completions' (shared docs, global batch §1.5).
      endpoint: chatUrl as BatchCreateParams['endpoint'],
      completion_window: '24h',
      metadata: { [CHUNK_METADATA_KEY]: chunkId }
    } satisfies BatchCreateParams
    try {
      return stateOf(await client.batches.create(body, { maxRetries: 0 }))
    } catch (err) {
      if (mayHaveArrived(err)) {
        const made = await find(chunkId)
        if (made !== null) return made
      }
      throw batchError('create the batch', err)
    }
  }

  return {
    apiVersion,
    chatUrl,
    uploadJsonl,
    findFile,
    create,
    find,
    retrieve: async batchId => stateOf(await call('read the batch', async () => await client.batches.retrieve(batchId))),
    cancel: async batchId => stateOf(await call('cancel the batch', async () => await client.batches.cancel(batchId))),
    async * lines (fileId) {
      const response = await call('read a result file', async () => await client.files.content(fileId))
      if (response.body === null) return
      yield * splitLines(Readable.fromWeb(response.body as import('node:stream/web').ReadableStream<Uint8Array>), maxLineBytes)
    },
    async deleteFile (fileId) {
      try {
        await client.files.delete(fileId)
      } catch (err) {
        if (err instanceof APIError && err.status === 404) return
        throw batchError('delete a file', err)
      }
    }
  }
}

/** A create whose reply was lost may have been carried out: a connection failure, a timeout, a 5xx. A 4xx was refused. */
function mayHaveArrived (err: unknown): boolean {
  if (err instanceof APIConnectionError) return true
  return err instanceof APIError && typeof err.status === 'number' && (err.status >= 500 || err.status === 408)
}

/**
 * The online path's codes (upstream-errors.ts) for a files or batches call, plus Azure's quota refusal at create:
 * a 400 `token_limit_exceeded` (the region's enqueued-token quota is full) is UPSTREAM_RATE_LIMITED, to try later.
 */
export function batchError (what: string, err: unknown): AppError {
  if (err instanceof APIError && isTokenLimit(err)) {
    return new UpstreamRateLimitedError('Azure OpenAI\'s batch quota (enqueued tokens) is full; the batch is submitted again later.', { cause: err })
  }
  const mapped = mapUpstreamError(err, { deployment: 'batch', timeoutMs: 0, timedOut: false, clientGone: false })
  if (mapped.code === 'INTERNAL_SERVER_ERROR' || mapped.code === 'UPSTREAM_UNAVAILABLE') {
    // Say which call; the status and class are enough, never the error's own text (it may quote a header).
    const status = err instanceof APIError && typeof err.status === 'number' ? ` (HTTP ${err.status})` : ''
    return new UpstreamUnavailableError(`Azure OpenAI's batch API failed to ${what}${status}; tried again later.`, { cause: err })
  }
  return mapped
}

function isTokenLimit (err: APIError): boolean {
  if (err.status !== 400) return false
  const body = err.error as { code?: unknown, message?: unknown } | undefined
  return err.code === 'token_limit_exceeded' || body?.code === 'token_limit_exceeded' ||
    (typeof body?.message === 'string' && body.message.includes('token_limit_exceeded'))
}

function fileOf (file: FileObject): UploadedFile {
  return { id: String(file.id), status: String(file.status ?? 'processed'), bytes: typeof file.bytes === 'number' ? file.bytes : null }
}

/** Azure's batch, normalised (its REST doc shows "Validating" and ISO times; the spec lower case and unix seconds). */
export function stateOf (raw: Batch | Record<string, unknown>): BatchState {
  const batch = raw as Record<string, unknown>
  const status = String(batch.status ?? '').toLowerCase()
  if (!STATUSES.has(status)) {
    throw new UpstreamUnavailableError(`Azure OpenAI returned a batch with an unknown status (${redactTokens(status.slice(0, 40))}).`)
  }
  const metadata = isRecord(batch.metadata) ? batch.metadata : {}
  const counts = isRecord(batch.request_counts) ? batch.request_counts : {}
  const errors = isRecord(batch.errors) && Array.isArray(batch.errors.data) ? batch.errors.data : []
  return {
    id: String(batch.id),
    status: status as BatchStatus,
    chunkId: typeof metadata[CHUNK_METADATA_KEY] === 'string' ? metadata[CHUNK_METADATA_KEY] : null,
    inputFileId: idOf(batch.input_file_id),
    outputFileId: idOf(batch.output_file_id),
    errorFileId: idOf(batch.error_file_id),
    errors: errors.slice(0, 20).filter(isRecord).map(error => ({
      code: String(error.code ?? 'unknown').slice(0, 64),
      message: redactTokens(String(error.message ?? '').slice(0, 300)),
      line: typeof error.line === 'number' ? error.line : null
    })),
    requestCounts: { total: countOf(counts.total), completed: countOf(counts.completed), failed: countOf(counts.failed) },
    createdAtMs: timeOf(batch.created_at),
    endedAtMs: timeOf(batch.completed_at) ?? timeOf(batch.failed_at) ?? timeOf(batch.expired_at) ?? timeOf(batch.cancelled_at)
  }
}

/** Unix seconds (number or digits) or an ISO date, as ms; anything else null. */
export function timeOf (value: unknown): number | null {
  if (typeof value === 'number' && Number.isFinite(value) && value > 0) return Math.round(value * 1000)
  if (typeof value !== 'string' || value === '') return null
  if (/^\d+$/.test(value)) return Number(value) * 1000
  const ms = Date.parse(value)
  return Number.isNaN(ms) ? null : ms
}

function idOf (value: unknown): string | null {
  return typeof value === 'string' && value !== '' ? value.slice(0, 200) : null
}

function countOf (value: unknown): number {
  return typeof value === 'number' && Number.isInteger(value) && value >= 0 ? value : 0
}

function isRecord (value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
}

async function sleep (ms: number): Promise<void> {
  await new Promise(resolve => setTimeout(resolve, ms))
}
