// A GraphQL multipart request (https://github.com/jaydenseric/graphql-multipart-request-spec)
// for identifyVehicle, encoded by the platform's FormData as a browser would.
import { IDENTIFY, PREFLIGHT_HEADERS } from './operation.ts'

export interface EncodedRequest {
  body: Buffer
  headers: Record<string, string>
}

export async function identifyRequest (file: Buffer, filename = 'photo.jpg'): Promise<EncodedRequest> {
  const form = new FormData()
  form.append('operations', JSON.stringify({ query: IDENTIFY, variables: { image: null, language: 'en' } }))
  form.append('map', JSON.stringify({ 0: ['variables.image'] }))
  form.append('0', new Blob([new Uint8Array(file)], { type: 'image/jpeg' }), filename)
  const response = new Response(form)
  return {
    body: Buffer.from(await response.arrayBuffer()),
    headers: { ...PREFLIGHT_HEADERS, 'content-type': response.headers.get('content-type') as string }
  }
}
