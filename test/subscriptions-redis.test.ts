// Several instances: with REDIS_URL, an identification made on one instance reaches subscribers on
// every instance (mqemitter-redis as mercurius' emitter). Two real server processes (`node src/server.ts`)
// and a real redis-server; the subscriber is the graphql-ws client library.
import t from 'tap'
import { identifyBody } from './support/multipart.ts'
import * as images from './support/images.ts'
import { startRedis } from './support/redis-server.ts'
import { spawnServer, stopServer, type ServerProcess } from './support/server-process.ts'
import { subscribe, within, type Subscriber } from './support/subscriber.ts'
import { newApiKey } from '../src/callers/api-keys.ts'

const farmer = newApiKey('farmer')
const dashboard = newApiKey('dashboard')

async function ready (server: ServerProcess): Promise<void> {
  // Two servers start at once: on a loaded 2-core machine that took over 15 s (each ~7 s alone).
  const deadline = Date.now() + 60_000
  for (;;) {
    try {
      if ((await fetch(`${server.origin}/health/ready`)).status === 200) return
    } catch {}
    if (Date.now() > deadline) throw new Error(`not ready; output:\n${server.output().slice(-2000)}`)
    await new Promise(resolve => setTimeout(resolve, 50))
  }
}

async function identify (server: ServerProcess, photo: Buffer): Promise<any> {
  const body = await identifyBody(photo)
  const res = await fetch(`${server.origin}/graphql`, { method: 'POST', headers: { ...body.headers, 'x-api-key': farmer.key }, body: new Uint8Array(body.payload) })
  const json = await res.json() as any
  if (json.data?.identifyVehicle == null) throw new Error(`identification failed: ${JSON.stringify(json)}`)
  return json.data.identifyVehicle
}

async function activeSubscriptions (server: ServerProcess): Promise<number> {
  const text = await (await fetch(`${server.origin}/metrics`)).text()
  return Number(/^agrivision_subscriptions_active (\d+)$/m.exec(text)?.[1] ?? NaN)
}

t.test('subscribed on A, identified on B (and the other way): received once, through Redis', async t => {
  const redisUrl = await startRedis(t)
  const env = { AUTH_MODE: 'apikey', API_KEY_HASHES: `${farmer.entry}, ${dashboard.entry}:VehicleIdentification.ReadAll`, REDIS_URL: redisUrl }
  const [a, b] = await Promise.all([spawnServer(env), spawnServer(env)]) as [ServerProcess, ServerProcess]
  t.teardown(() => Promise.all([stopServer(a), stopServer(b)]))
  await Promise.all([ready(a), ready(b)])

  const ws = (server: ServerProcess): string => `ws://127.0.0.1:${server.port}/graphql`
  const subscribers: Subscriber[] = [
    subscribe(ws(a), { connectionParams: { 'x-api-key': farmer.key } }),
    subscribe(ws(a), { connectionParams: { 'x-api-key': dashboard.key } }),
    subscribe(ws(b), { connectionParams: { 'x-api-key': farmer.key } })
  ]
  t.teardown(() => Promise.all(subscribers.map(async subscriber => { await subscriber.dispose() })))
  const [onA, dashboardOnA, onB] = subscribers as [Subscriber, Subscriber, Subscriber]
  await Promise.all(subscribers.map(async subscriber => await within(subscriber.connected, 5000, 'connection_ack')))
  const deadline = Date.now() + 5000
  while (await activeSubscriptions(a) < 2 || await activeSubscriptions(b) < 1) {
    if (Date.now() > deadline) throw new Error('the subscriptions did not start')
    await new Promise(resolve => setTimeout(resolve, 20))
  }

  const onB1 = await identify(b, await images.jpeg(40, 30))
  t.equal((await onA.next()).data.identificationCompleted.id, onB1.id, 'made on B, received on A')
  t.equal((await dashboardOnA.next()).data.identificationCompleted.id, onB1.id, 'and by ReadAll on A')
  t.equal((await onB.next()).data.identificationCompleted.id, onB1.id, 'and on B itself')
  const onA1 = await identify(a, await images.jpeg(41, 30))
  t.equal((await onB.next()).data.identificationCompleted.id, onA1.id, 'made on A, received on B')
  t.equal((await onA.next()).data.identificationCompleted.id, onA1.id, 'and on A itself')
  await new Promise(resolve => setTimeout(resolve, 200))
  t.same(subscribers.map(subscriber => subscriber.received.length), [2, 2, 2], 'each exactly once')
  t.equal(onA.received[0]!.payload.data.identificationCompleted.thumbnailUrl, null, 'no thumbnail URL in a live update')

  // SIGTERM (close-with-grace): B's sockets close with 1001 and B exits cleanly, well within the grace.
  const started = performance.now()
  b.child.kill('SIGTERM')
  t.same(await within(onB.closed, 10_000, 'close'), { code: 1001, reason: 'Server shutting down' }, 'SIGTERM: closed with 1001 Going Away')
  t.same(await within(b.exited, 10_000, 'exit'), { code: 0, signal: null }, 'B exits with 0')
  t.ok(performance.now() - started < 5000, `B was gone in ${Math.round(performance.now() - started)} ms`)
  const afterB = await identify(a, await images.jpeg(42, 30))
  t.equal((await onA.next()).data.identificationCompleted.id, afterB.id, 'A goes on')
})
