// Background workers: registered once, started when the app is ready, stopped when it closes,
// and counted in readiness.
import t from 'tap'
import { buildApp } from '../src/app.ts'
import { createSimulatedVision } from '../src/vision/simulated.ts'
import { testConfig } from './helper.ts'

t.test('a worker starts on ready, reports readiness, stops on close', async t => {
  const app = await buildApp({ config: testConfig(), vision: createSimulatedVision() })
  const calls: string[] = []
  let healthy = true
  app.workers.register({
    name: 'deliverer',
    start: () => { calls.push('start') },
    stop: async () => { calls.push('stop') },
    ready: () => healthy
  })
  t.same(calls, [], 'nothing runs before the app is ready')
  await app.ready()
  t.same(calls, ['start'])
  t.equal((await app.inject('/health/ready')).statusCode, 200)
  healthy = false
  const ready = await app.inject('/health/ready')
  t.equal(ready.statusCode, 503)
  t.equal(ready.json().reason, 'worker not ready: deliverer')
  t.throws(() => app.workers.register({ name: 'late', start: () => {}, stop: () => {} }), /registered after start-up/)
  await app.close()
  t.same(calls, ['start', 'stop'])
})

t.test('a worker that fails to stop does not keep the app from closing', async t => {
  const app = await buildApp({ config: testConfig(), vision: createSimulatedVision() })
  app.workers.register({ name: 'stubborn', start: () => {}, stop: () => { throw new Error('cannot stop') } })
  await app.ready()
  await t.resolves(app.close())
})
