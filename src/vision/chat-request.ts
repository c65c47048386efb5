// The chat completions request body, encoded once into bytes. The image is the bulk of it (a 100 KB
// photo is 133 KB of base64): JSON.stringify of the whole object (the openai SDK's encoder) and then
// UTF-8 encoding it for the socket were ~13 % of the Azure path's CPU when profiled. Base64 needs no
// JSON escaping, so the small rest is stringified around a placeholder and the image bytes go in as is.
import { randomUUID } from 'node:crypto'
import type { ChatCompletionCreateParamsNonStreaming } from 'openai/resources/chat/completions'
import { systemPrompt } from './prompt.ts'
import { ANSWER_SCHEMA, ANSWER_SCHEMA_NAME } from './answer-schema.ts'
import type { IdentifyRequest } from './types.ts'

/** What the request body is made of (the identification's request without its signal: bulk jobs write it to a file). */
export type ChatRequestInput = Pick<IdentifyRequest, 'image' | 'mimeType' | 'detail' | 'instructions' | 'language'>

export function chatRequest (
  deployment: string, request: IdentifyRequest | ChatRequestInput, maxTokens: number, imageUrl: string
): ChatCompletionCreateParamsNonStreaming {
  return {
    model: deployment,
    max_tokens: maxTokens,
    // Structured outputs: the answer is JSON of exactly this shape (API v1, or dated versions from 2024-10-21).
    response_format: { type: 'json_schema', json_schema: { name: ANSWER_SCHEMA_NAME, strict: true, schema: ANSWER_SCHEMA } },
    messages: [
      { role: 'system', content: systemPrompt(request.language) },
      {
        role: 'user',
        content: [
          { type: 'text', text: request.instructions },
          // The uploaded bytes themselves (after the pipeline), with the type sniffed from them.
          { type: 'image_url', image_url: { url: imageUrl, detail: request.detail } }
        ]
      }
    ]
  }
}

/**
 * Bytes base64-encoded per piece: a multiple of 3, so the pieces' encodings join into the whole's. One string of the
 * whole image's base64 cost ~590 µs for a 100 KB photo (V8 making a large string), these pieces ~20 µs in all.
 */
const BASE64_PIECE = 3 * 4096

/** The same request as JSON bytes, with the image's data URL spliced in without a second copy through JSON.stringify. */
export function encodeChatRequest (deployment: string, request: ChatRequestInput, maxTokens: number): Buffer {
  const placeholder = `agrivision-image-${randomUUID()}`
  const json = JSON.stringify(chatRequest(deployment, request, maxTokens, placeholder))
  const at = json.indexOf(placeholder)
  const head = Buffer.from(`${json.slice(0, at)}data:${request.mimeType};base64,`, 'utf8')
  const tail = Buffer.from(json.slice(at + placeholder.length), 'utf8')
  const { image } = request
  const body = Buffer.allocUnsafe(head.length + 4 * Math.ceil(image.length / 3) + tail.length)
  let written = head.copy(body, 0)
  for (let from = 0; from < image.length; from += BASE64_PIECE) {
    written += body.write(image.toString('base64', from, Math.min(from + BASE64_PIECE, image.length)), written, 'latin1')
  }
  written += tail.copy(body, written)
  return body.subarray(0, written)
}
