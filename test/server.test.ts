// The real process (src/server.ts) against the fake Azure: start-up, readiness, the log, and a
// graceful shutdown with requests in flight.
import t from 'tap'
import { FakeAzure } from './support/fake-azure.ts'
import { identifyBody } from './support/multipart.ts'
import * as images from './support/images.ts'
import { spawnServer, type ServerProcess } from './support/server-process.ts'

/** The process, logging at info, and a promise of its origin once it says it listens. */
async function startServer (env: Record<string, string>): Promise<ServerProcess & { listening: Promise<string> }> {
  const server = await spawnServer({ LOG_LEVEL: 'info', ...env }, { maxLifetimeMs: 60_000 })
  const listening = (async () => {
    while (!/Server listening at http:\/\/127\.0\.0\.1:\d+/.test(server.output())) {
      if (server.child.exitCode !== null) throw new Error(`the server exited: ${server.output().slice(-2000)}`)
      await new Promise(resolve => setTimeout(resolve, 20))
    }
    return server.origin
  })()
  listening.catch(() => {})
  return { ...server, listening }
}

const exitCode = async (server: ServerProcess): Promise<number | null> => (await server.exited).code

t.test('an invalid configuration exits non-zero naming the variable', async t => {
  const server = await startServer({ PORT: 'not-a-port' })
  t.equal(await exitCode(server), 1)
  t.match(server.output(), /PORT/)
  const missing = await startServer({ VISION_BACKEND: 'azure' })
  t.equal(await exitCode(missing), 1)
  t.match(missing.output(), /AZURE_OPENAI_ENDPOINT/)
})

t.test('against Azure: ready after the first token, one log line per identification, no secrets logged, graceful SIGTERM', async t => {
  const fake = await new FakeAzure().start()
  t.teardown(() => fake.close())
  const started = performance.now()
  const server = await startServer({
    ...fake.identityEnv(),
    AZURE_OPENAI_ENDPOINT: fake.origin,
    AZURE_OPENAI_DEPLOYMENT: 'gpt-4o-vision',
    AZURE_OPENAI_API_KEY: 'an-api-key-that-must-not-be-used',
    SHUTDOWN_GRACE_MS: '10000'
  })
  t.teardown(() => { server.child.kill('SIGKILL') })
  const origin = await server.listening

  let ready = await fetch(`${origin}/health/ready`)
  while (ready.status !== 200 && performance.now() - started < 10_000) {
    await new Promise(resolve => setTimeout(resolve, 20))
    ready = await fetch(`${origin}/health/ready`)
  }
  t.equal(ready.status, 200, 'ready')
  t.comment(`time to ready: ${Math.round(performance.now() - started)} ms`)
  t.equal(fake.tokenRequests.length, 1, 'the token was fetched at start-up')
  t.equal((await fetch(`${origin}/health/live`)).status, 200)

  const photo = await images.jpegWithGps(200, 150)
  const send = async () => {
    const { headers, payload } = await identifyBody(photo)
    const res = await fetch(`${origin}/graphql`, { method: 'POST', headers, body: new Uint8Array(payload) })
    return { status: res.status, body: await res.json() as any }
  }
  const first = await send()
  t.equal(first.body.data.identifyVehicle.backend, 'AZURE_OPENAI')

  // Shutdown with requests in flight: they finish, then the process exits 0.
  fake.chatFault = () => ({ kind: 'ok', latencyMs: 800 })
  const inFlight = Array.from({ length: 5 }, () => send())
  while (fake.inFlightChats < 5) await new Promise(resolve => setTimeout(resolve, 10))
  server.child.kill('SIGTERM')
  const results = await Promise.all(inFlight)
  for (const result of results) {
    t.equal(result.status, 200)
    t.equal(result.body.data?.identifyVehicle?.backend, 'AZURE_OPENAI', 'in-flight identification completed')
  }
  const refused = await fetch(`${origin}/health/live`).then(res => res.status, () => 'connection refused')
  t.not(refused, 200, `new requests are refused while closing (${refused})`)
  t.equal(await exitCode(server), 0, 'exit 0')

  const log = server.output()
  const lines = log.split('\n').filter(line => line.startsWith('{')).map(line => JSON.parse(line))
  // One access line per request: an identification's request line carries its fields.
  const done = lines.filter(line => line.msg === 'request completed' && line.identification !== undefined)
  t.equal(done.length, 6, 'one line per identification')
  t.match(done[0].identification, { sha256: /^[0-9a-f]{64}$/, bytes: photo.length, mime: 'image/jpeg', backend: 'AZURE_OPENAI', upstreamStatus: 200, usage: { totalTokens: Number } })
  t.match(done[0], { reqId: String, req: { method: 'POST', url: '/graphql' }, res: { statusCode: 200 }, responseTime: Number }, 'with the request id, the request and its status')
  t.notOk(lines.some(line => line.msg === 'incoming request' || line.msg === 'identification done'), 'and no other line per request')
  for (const token of fake.issued.keys()) t.notOk(log.includes(token), 'no access token in the log')
  t.notOk(log.includes(fake.identityHeader), 'no identity header secret in the log')
  t.notOk(log.includes('an-api-key-that-must-not-be-used'), 'no API key in the log')
  t.notOk(log.includes(photo.subarray(0, 48).toString('base64')), 'no image bytes in the log')
  t.notMatch(log, /Bearer /, 'no bearer header in the log')
})

t.test('the embedded default: simulated backend, no Azure needed', async t => {
  const server = await startServer({})
  t.teardown(() => { server.child.kill('SIGKILL') })
  const origin = await server.listening
  t.equal((await fetch(`${origin}/health/ready`)).status, 200)
  t.equal((await fetch(`${origin}/graphiql`)).status, 200, 'GraphiQL on by default in development')
  t.match(server.output(), /SIMULATED.*AZURE_OPENAI_ENDPOINT/, 'start-up warns and names the variables')
  server.child.kill('SIGINT')
  t.equal(await exitCode(server), 0)
})
