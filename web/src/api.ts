// The public GraphQL API, as any front end would call it: JSON POSTs for queries, the GraphQL multipart
// request for the photo (XMLHttpRequest: fetch reports no upload progress), an Idempotency-Key on every
// identification so a retry after a dropped connection is answered from the first (never paid twice).
import type { Credentials } from './auth.ts'

export const IDENTIFICATION_FIELDS = `id answer language backend model cached createdAt thumbnailUrl
  vehicles { category kind make model confidence evidence }`

export interface Vehicle {
  category: string
  kind: string
  make: string | null
  model: string | null
  confidence: string
  evidence: string[]
}

export interface Identification {
  id: string
  answer: string
  language: string
  backend: 'AZURE_OPENAI' | 'SIMULATED'
  model: string
  cached: boolean
  createdAt: string
  thumbnailUrl: string | null
  vehicles: Vehicle[]
}

/** A GraphQL or HTTP error, with the API's stable code. */
export class ApiError extends Error {
  readonly code: string
  readonly status: number
  constructor (message: string, code: string, status: number) {
    super(message)
    this.code = code
    this.status = status
  }

  /** The credentials were refused (a rotated key, an expired sign-in): the photo waits until the user signs in again. */
  get needsSignIn (): boolean {
    return this.code === 'UNAUTHENTICATED' || this.code === 'FORBIDDEN' || this.code === 'SIGN_IN'
  }

  /** Worth sending again later (the network, the service or Azure were unavailable), rather than a bad photo. */
  get retryable (): boolean {
    return this.code === 'NETWORK' || this.status >= 500 || this.status === 408 || this.status === 409 || this.status === 429 ||
      /^(UPSTREAM_|OVERLOADED|RATE_LIMITED|AUTH_UNAVAILABLE|STORAGE_UNAVAILABLE|IDEMPOTENCY_KEY_IN_USE)/.test(this.code)
  }
}

function errorOf (status: number, body: any): ApiError {
  const first = Array.isArray(body?.errors) ? body.errors[0] : undefined
  if (first !== undefined) return new ApiError(String(first.message ?? 'error'), String(first.extensions?.code ?? 'INTERNAL_SERVER_ERROR'), status)
  return new ApiError(`HTTP ${status}`, status === 0 ? 'NETWORK' : 'INTERNAL_SERVER_ERROR', status)
}

export async function graphql<T> (credentials: Credentials, query: string, variables: Record<string, unknown> = {}): Promise<T> {
  let response: Response
  try {
    response = await fetch('/graphql', {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...(await credentials.headers()) },
      body: JSON.stringify({ query, variables })
    })
  } catch {
    throw new ApiError('network error', 'NETWORK', 0)
  }
  const body = await response.json().catch(() => null)
  if (!response.ok || body === null || (Array.isArray(body.errors) && body.errors.length > 0)) throw errorOf(response.status, body)
  return body.data as T
}

export interface UploadRequest {
  photo: Blob
  instructions: string
  language: string
  detail: 'AUTO' | 'HIGH' | 'LOW'
  /** The Idempotency-Key: the same for every retry of one photo. */
  key: string
}

const IDENTIFY = `mutation Identify($image: Upload!, $instructions: String, $language: String, $detail: ImageDetail) {
  identifyVehicle(image: $image, instructions: $instructions, language: $language, detail: $detail) { ${IDENTIFICATION_FIELDS} }
}`

export async function uploadIdentification (
  credentials: Credentials, request: UploadRequest, onProgress: (fraction: number) => void, signal?: AbortSignal
): Promise<Identification> {
  const form = new FormData()
  form.append('operations', JSON.stringify({
    query: IDENTIFY,
    variables: { image: null, instructions: request.instructions || null, language: request.language, detail: request.detail }
  }))
  form.append('map', JSON.stringify({ 0: ['variables.image'] }))
  form.append('0', request.photo, 'photo.jpg')
  const headers = await credentials.headers()
  return await new Promise<Identification>((resolve, reject) => {
    const xhr = new XMLHttpRequest()
    xhr.open('POST', '/graphql')
    xhr.responseType = 'json'
    // CSRF: a header a cross-site form cannot send; the service refuses multipart posts without one.
    xhr.setRequestHeader('graphql-require-preflight', '1')
    xhr.setRequestHeader('idempotency-key', `"${request.key}"`)
    for (const [name, value] of Object.entries(headers)) xhr.setRequestHeader(name, value)
    xhr.upload.onprogress = event => { if (event.lengthComputable) onProgress(event.loaded / event.total) }
    xhr.onerror = () => { reject(new ApiError('network error', 'NETWORK', 0)) }
    xhr.onabort = () => { reject(new ApiError('cancelled', 'CANCELLED', 0)) }
    xhr.onload = () => {
      const body = xhr.response
      const data = body?.data?.identifyVehicle
      if (xhr.status === 200 && data) resolve(data as Identification)
      else reject(errorOf(xhr.status, body))
    }
    signal?.addEventListener('abort', () => { xhr.abort() })
    xhr.send(form)
  })
}

export interface Page {
  identifications: {
    edges: Array<{ node: Identification }>
    pageInfo: { hasNextPage: boolean, endCursor: string | null }
  }
}

export interface HistoryFilter {
  category?: string
  from?: string
  to?: string
}

export async function historyPage (credentials: Credentials, filter: HistoryFilter, after: string | null): Promise<Page['identifications']> {
  const data = await graphql<Page>(credentials, `query History($first: Int, $after: String, $filter: IdentificationFilter) {
    identifications(first: $first, after: $after, filter: $filter) { edges { node { ${IDENTIFICATION_FIELDS} } } pageInfo { hasNextPage endCursor } }
  }`, { first: 20, after, filter: cleanFilter(filter) })
  return data.identifications
}

function cleanFilter (filter: HistoryFilter): Record<string, string> {
  const out: Record<string, string> = {}
  if (filter.category) out.category = filter.category
  if (filter.from) out.from = new Date(`${filter.from}T00:00:00`).toISOString()
  if (filter.to) out.to = new Date(new Date(`${filter.to}T00:00:00`).getTime() + 86_400_000).toISOString()
  return out
}

export async function deleteIdentification (credentials: Credentials, id: string): Promise<boolean> {
  const data = await graphql<{ deleteIdentification: boolean }>(credentials, 'mutation ($id: ID!) { deleteIdentification(id: $id) }', { id })
  return data.deleteIdentification
}
