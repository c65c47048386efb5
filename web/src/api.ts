// The public GraphQL API, as any front end would call it: JSON POSTs for queries, the GraphQL multipart
// request for the photo (XMLHttpRequest: fetch reports no upload progress), an Idempotency-Key on every
// identification so a retry after a dropped connection is answered from the first (never paid twice).
// The operations below are marked `/* GraphQL */`: `npm run codegen` checks them against the server's SDL and
// generates their types (./generated/), with the API's enums, so a renamed field or a new error code fails tsc here.
import type { Credentials } from './auth.ts'
import type {
  DeleteIdentificationMutation, DeleteIdentificationMutationVariables, HistoryQuery, HistoryQueryVariables,
  IdentificationFieldsFragment, IdentifyMutation, IdentifyMutationVariables
} from './generated/api-types.ts'
import type { ErrorCode, IdentificationFilter, ImageDetail } from './generated/schema-types.ts'

/** What the app shows of an identification: the fragment every operation below asks for. */
export type Identification = IdentificationFieldsFragment

/** Appended to each operation that spreads `...IdentificationFields`. */
export const IDENTIFICATION_FIELDS = /* GraphQL */ `fragment IdentificationFields on Identification {
  id answer language backend model cached createdAt thumbnailUrl detailUsed looks
  vehicles { category kind make model confidence evidence }
}`

/** The API's `extensions.code`s, and the app's own: no connection, cancelled by the user, sign in again. */
export type ApiErrorCode = ErrorCode | 'NETWORK' | 'CANCELLED' | 'SIGN_IN'

/** A GraphQL or HTTP error, with the API's stable code. */
export class ApiError extends Error {
  readonly code: ApiErrorCode
  readonly status: number
  constructor (message: string, code: ApiErrorCode, status: number) {
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
  // The server sends only ErrorCode values (src/errors.ts is typed by the same SDL).
  const code = (first?.extensions?.code ?? 'INTERNAL_SERVER_ERROR') as ErrorCode
  if (first !== undefined) return new ApiError(String(first.message ?? 'error'), code, status)
  return new ApiError(`HTTP ${status}`, status === 0 ? 'NETWORK' : 'INTERNAL_SERVER_ERROR', status)
}

/** One operation over JSON: `Data` and `Variables` are the operation's generated types. */
export async function graphql<Data, Variables extends object> (
  credentials: Credentials, query: string, variables: Variables
): Promise<Data> {
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
  return body.data as Data
}

export interface UploadRequest {
  photo: Blob
  instructions: string
  language: string
  detail: ImageDetail
  /** The Idempotency-Key: the same for every retry of one photo. */
  key: string
}

const IDENTIFY = /* GraphQL */ `mutation Identify($image: Upload!, $instructions: String, $language: String, $detail: ImageDetail) {
  identifyVehicle(image: $image, instructions: $instructions, language: $language, detail: $detail) { ...IdentificationFields }
}`

export async function uploadIdentification (
  credentials: Credentials, request: UploadRequest, onProgress: (fraction: number) => void, signal?: AbortSignal
): Promise<Identification> {
  const form = new FormData()
  // The file travels as a part of its own, mapped to `variables.image` (null in `operations`).
  const variables: Omit<IdentifyMutationVariables, 'image'> & { image: null } = {
    image: null, instructions: request.instructions || null, language: request.language, detail: request.detail
  }
  form.append('operations', JSON.stringify({ query: `${IDENTIFY}\n${IDENTIFICATION_FIELDS}`, variables }))
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
      const data = (body?.data as IdentifyMutation | null | undefined)?.identifyVehicle
      if (xhr.status === 200 && data) resolve(data)
      else reject(errorOf(xhr.status, body))
    }
    signal?.addEventListener('abort', () => { xhr.abort() })
    xhr.send(form)
  })
}

export type Page = HistoryQuery['identifications']

export interface HistoryFilter {
  category?: IdentificationFilter['category']
  /** Days as the date inputs give them (`2026-12-07`), in the phone's time zone. */
  from?: string
  to?: string
}

const HISTORY = /* GraphQL */ `query History($first: Int, $after: String, $filter: IdentificationFilter) {
  identifications(first: $first, after: $after, filter: $filter) { edges { node { ...IdentificationFields } } pageInfo { hasNextPage endCursor } }
}`

export async function historyPage (credentials: Credentials, filter: HistoryFilter, after: string | null): Promise<Page> {
  const data = await graphql<HistoryQuery, HistoryQueryVariables>(credentials, `${HISTORY}\n${IDENTIFICATION_FIELDS}`,
    { first: 20, after, filter: cleanFilter(filter) })
  return data.identifications
}

function cleanFilter (filter: HistoryFilter): IdentificationFilter {
  const out: IdentificationFilter = {}
  if (filter.category) out.category = filter.category
  if (filter.from) out.from = new Date(`${filter.from}T00:00:00`).toISOString()
  if (filter.to) out.to = new Date(new Date(`${filter.to}T00:00:00`).getTime() + 86_400_000).toISOString()
  return out
}

const DELETE = /* GraphQL */ `mutation DeleteIdentification($id: ID!) {
  deleteIdentification(id: $id)
}`

export async function deleteIdentification (credentials: Credentials, id: string): Promise<boolean> {
  const data = await graphql<DeleteIdentificationMutation, DeleteIdentificationMutationVariables>(credentials, DELETE, { id })
  return data.deleteIdentification
}
