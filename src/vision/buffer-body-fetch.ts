// The openai client's fetch, for requests whose body is bytes already (the chat request, encoded once by
// chat-request.ts): sent with undici's request(), which writes the Buffer to the socket as it is. The platform's
// fetch copies such a body twice (WHATWG "get a copy of the bytes", then again into its ReadableStream): 3 × 140 KB
// of fresh off-heap memory per 100 KB photo. V8 starts a full mark-compact each time ~64 MB of such memory has come
// and gone ("external memory pressure"), which at 150 requests/s in flight on Azure was a 60–250 ms pause every
// second or two: the p99 of every answer waiting beside it. Any other body (the SDK's own JSON, none) goes through
// the platform's fetch unchanged. undici is the library behind Node's fetch; both use the same global dispatcher
// (connection pool).
import { request } from 'undici'

type Fetch = typeof globalThis.fetch

/** Statuses whose response has no body (a Response refuses one). */
const NO_BODY = new Set([101, 204, 205, 304])
/** A chat answer is a few KB (VISION_MAX_TOKENS); an error body less. Anything near this is not an answer. */
export const MAX_RESPONSE_BYTES = 4 * 1024 * 1024

export class ResponseTooLargeError extends Error {
  override name = 'ResponseTooLargeError'
  constructor () { super(`the response body is over ${MAX_RESPONSE_BYTES} bytes`) }
}

export function bufferBodyFetch (fallback: Fetch = globalThis.fetch): Fetch {
  return async (input, init) => {
    const body = init?.body
    if (!(body instanceof Uint8Array) || init?.redirect === 'manual') return await fallback(input, init)
    const url = typeof input === 'string' ? input : input instanceof URL ? input.href : input.url
    const response = await request(url, {
      method: (init?.method ?? 'POST') as 'POST',
      headers: headerRecord(init?.headers),
      body,
      signal: init?.signal ?? undefined
    })
    const headers = new Headers()
    for (const [name, value] of Object.entries(response.headers)) {
      if (Array.isArray(value)) for (const v of value) headers.append(name, v)
      else if (value !== undefined) headers.append(name, value)
    }
    if (NO_BODY.has(response.statusCode)) {
      response.body.resume()
      return new Response(null, { status: response.statusCode, headers })
    }
    // Read whole here (small, bounded), inside the SDK's timeout and abort signal. Not handed on as a stream: a web
    // stream made from undici's body (Readable.toWeb) threw "Controller is already closed" out of the event loop
    // when the SDK cancelled it to retry.
    const chunks: Buffer[] = []
    let length = 0
    for await (const chunk of response.body as AsyncIterable<Buffer>) {
      length += chunk.length
      if (length > MAX_RESPONSE_BYTES) {
        response.body.destroy()
        throw new ResponseTooLargeError()
      }
      chunks.push(chunk)
    }
    const bytes = chunks.length === 1 ? chunks[0] as Buffer : Buffer.concat(chunks, length)
    const view = new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength) as Uint8Array<ArrayBuffer>
    return new Response(view, { status: response.statusCode, headers })
  }
}

function headerRecord (headers: HeadersInit | undefined): Record<string, string> {
  const record: Record<string, string> = {}
  if (headers === undefined) return record
  new Headers(headers).forEach((value, name) => { record[name] = value })
  return record
}
