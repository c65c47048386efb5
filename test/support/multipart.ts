// Builds GraphQL multipart requests (https://github.com/jaydenseric/graphql-multipart-request-spec)
// with the platform's own FormData encoder, so bodies are what a browser would send.

export const IDENTIFY = `mutation Identify($image: Upload!, $instructions: String, $language: String, $detail: ImageDetail) {
  identifyVehicle(image: $image, instructions: $instructions, language: $language, detail: $detail) {
    id answer language backend model cached callerId
    vehicles { category kind make model confidence evidence }
    image { sha256 mimeType bytes width height }
    usage { promptTokens completionTokens totalTokens }
    durationMs createdAt
  }
}`

export type Part = [name: string, value: string] | [name: string, value: Buffer | Uint8Array, filename: string, type?: string]

export interface EncodedBody {
  payload: Buffer
  headers: Record<string, string>
}

export async function encodeParts (parts: Part[], headers: Record<string, string> = { 'graphql-require-preflight': '1' }): Promise<EncodedBody> {
  const form = new FormData()
  for (const [name, value, filename, type] of parts) {
    if (typeof value === 'string') form.append(name, value)
    else form.append(name, new Blob([new Uint8Array(value)], { type: type ?? 'application/octet-stream' }), filename)
  }
  const response = new Response(form)
  return {
    payload: Buffer.from(await response.arrayBuffer()),
    headers: { ...headers, 'content-type': response.headers.get('content-type') as string }
  }
}

export interface IdentifyVariables {
  instructions?: string | null
  language?: string | null
  detail?: 'AUTO' | 'HIGH' | 'LOW' | 'ADAPTIVE' | null
}

/** A well-formed identifyVehicle upload of one file. */
export function identifyParts (file: Buffer, variables: IdentifyVariables = {}, filename = 'photo.jpg', type = 'image/jpeg'): Part[] {
  return [
    ['operations', JSON.stringify({ query: IDENTIFY, variables: { image: null, ...variables } })],
    ['map', JSON.stringify({ 0: ['variables.image'] })],
    ['0', file, filename, type]
  ]
}

export async function identifyBody (file: Buffer, variables: IdentifyVariables = {}): Promise<EncodedBody> {
  return await encodeParts(identifyParts(file, variables))
}
