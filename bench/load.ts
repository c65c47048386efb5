// Child process: the load generator. Runs autocannon jobs that run.ts sends over IPC, one at a time,
// and checks every answer: 2xx, no GraphQL errors, the uploaded image's sha256, the expected answer.
import { readFileSync } from 'node:fs'
import autocannon from 'autocannon'
import { identifyRequest, type EncodedRequest } from './lib/multipart.ts'
import type { LoadJob, LoadMessage, LoadReply, LoadResult } from './lib/protocol.ts'

const bodies = new Map<string, EncodedRequest>()

async function requestFor (file: string): Promise<EncodedRequest> {
  let encoded = bodies.get(file)
  if (encoded === undefined) {
    encoded = await identifyRequest(readFileSync(file))
    bodies.clear() // keep one (they can be 10 MB)
    bodies.set(file, encoded)
  }
  return encoded
}

function verifier (job: LoadJob, onMismatch: (body: string) => void): (body: string) => boolean {
  return (body) => {
    let ok = false
    try {
      const parsed = JSON.parse(body)
      const identification = parsed?.data?.identifyVehicle
      ok = !(parsed.errors?.length > 0) &&
        identification?.image?.sha256 === job.expectSha256 &&
        typeof identification.answer === 'string' && identification.answer.startsWith(job.expectAnswerPrefix)
    } catch {}
    if (!ok) onMismatch(body)
    return ok
  }
}

async function run (job: LoadJob): Promise<LoadResult> {
  const { body, headers } = await requestFor(job.file)
  let firstMismatch: string | undefined
  const result = await autocannon({
    url: job.url,
    method: 'POST',
    headers: { ...headers, ...job.headers },
    body,
    connections: job.connections,
    pipelining: 1,
    timeout: job.timeout,
    ...(job.amount !== undefined ? { amount: job.amount } : { duration: job.duration ?? 5 }),
    verifyBody: verifier(job, (text) => { firstMismatch ??= text.slice(0, 500) })
  } as autocannon.Options)
  // Completed 2xx responses (autocannon drops those still in flight when the duration ends).
  const completed = result['2xx']
  return {
    requests: completed,
    durationSec: result.duration,
    rps: completed / result.duration,
    min: result.latency.min,
    mean: result.latency.mean,
    p50: result.latency.p50,
    p99: result.latency.p99,
    max: result.latency.max,
    non2xx: result.non2xx,
    errors: result.errors,
    timeouts: result.timeouts,
    mismatches: result.mismatches,
    statusCodes: Object.fromEntries(Object.entries(result.statusCodeStats ?? {})
      .map(([code, v]) => [code, (v as { count: number }).count])),
    firstMismatch
  }
}

function reply (message: LoadReply): void {
  process.send?.(message)
}

process.on('message', (message: LoadMessage) => {
  if (message.type === 'stop') process.exit(0)
  if (message.type === 'run') {
    run(message.job).then(
      result => reply({ type: 'result', id: message.id, result }),
      err => reply({ type: 'error', id: message.id, message: String((err as Error)?.stack ?? err) })
    )
  }
})
process.on('disconnect', () => process.exit(0))
reply({ type: 'ready' })
