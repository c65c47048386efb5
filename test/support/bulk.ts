// What the bulk job tests share: createBulkJob as a multipart request (an archive, or images), the job as the
// API shows it, and waiting for a job to reach a status.
import type { FastifyInstance } from 'fastify'
import { send, sendJson, type Answer } from './http.ts'
import { encodeParts, type EncodedBody, type Part } from './multipart.ts'

export const CREATE = `mutation ($archive: Upload, $images: [Upload!], $detail: ImageDetail) {
  createBulkJob(archive: $archive, images: $images, detail: $detail) { id status mode }
}`

export const JOB = `query ($id: ID!, $status: BulkItemStatus, $after: String, $first: Int) {
  bulkJob(id: $id) {
    id status mode createdAt completedAt code
    counts { total pending succeeded failed cancelled }
    usage { promptTokens completionTokens estimatedCost }
    items(first: $first, after: $after, status: $status) {
      edges { cursor node { name status code identification { id bulkJobId answer image { sha256 bytes } } } }
      pageInfo { hasNextPage endCursor }
    }
  }
}`

/** createBulkJob with `archive` (a ZIP) or `images` (files), as a client sends it. */
export async function createJob (
  app: FastifyInstance, source: { archive?: Buffer, images?: Buffer[] }, headers: Record<string, string> = {}
): Promise<Answer> {
  return await send(app, await createBody(source), headers)
}

/** createBulkJob's multipart body. */
export async function createBody (source: { archive?: Buffer, images?: Buffer[] }): Promise<EncodedBody> {
  const variables: Record<string, unknown> = { archive: null, images: null }
  const map: Record<string, string[]> = {}
  const files: Part[] = []
  if (source.archive !== undefined) {
    map.a = ['variables.archive']
    files.push(['a', source.archive, 'photos.zip', 'application/zip'])
  }
  if (source.images !== undefined) {
    variables.images = source.images.map(() => null)
    source.images.forEach((image, i) => {
      map[`i${i}`] = [`variables.images.${i}`]
      files.push([`i${i}`, image, `photo-${i}.jpg`, 'image/jpeg'])
    })
  }
  const parts: Part[] = [['operations', JSON.stringify({ query: CREATE, variables })], ['map', JSON.stringify(map)], ...files]
  return await encodeParts(parts)
}

export async function job (app: FastifyInstance, id: string, headers: Record<string, string> = {}, variables: object = {}): Promise<any> {
  const res = await sendJson(app, { query: JOB, variables: { id, first: 100, ...variables } }, headers)
  if (res.body.errors !== undefined) throw new Error(JSON.stringify(res.body.errors))
  return res.body.data.bulkJob
}

/** Polls until the job has one of `statuses` (10 s at most). */
export async function until (app: FastifyInstance, id: string, statuses: string[], headers: Record<string, string> = {}): Promise<any> {
  const deadline = Date.now() + 15_000
  for (;;) {
    const found = await job(app, id, headers)
    if (found !== null && statuses.includes(found.status)) return found
    if (Date.now() > deadline) throw new Error(`job ${id} still ${found?.status}`)
    await new Promise(resolve => setTimeout(resolve, 50))
  }
}
