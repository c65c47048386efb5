// The limits plugin: app.limits' slots and upload bytes, built from their settings alone, and measured under
// the metric names, help and labels the dashboards read.
import t from 'tap'
import Fastify from 'fastify'
import limitsPlugin from '../src/limits/plugin.ts'
import { Metrics } from '../src/metrics/registry.ts'
import { buildTestApp } from './helper.ts'

const overload = {
  maxConcurrency: 1,
  maxConcurrencyPerCaller: 2,
  queueSize: 1,
  queueTimeoutMs: 5000,
  uploadBytesInFlight: 1000,
  uploadBytesInFlightPerCaller: 800
}

const HELP = {
  agrivision_admission_wait_seconds: 'Time identifications waited for a slot.',
  agrivision_admission_active: 'Identifications holding a slot.',
  agrivision_admission_queued: 'Identifications waiting for a slot.',
  agrivision_upload_bytes_in_flight: 'Bytes reserved by uploads being received or in progress.',
  agrivision_uploads_in_flight: 'Uploads being received or in progress.',
  agrivision_refusals_total: 'Requests refused to protect the service: rate limit, overload (queue full, queue timeout, pressure).'
}

/** One sample's value from the exposition text; undefined when absent. */
function sample (text: string, name: string): number | undefined {
  const line = text.split('\n').find(line => line.startsWith(`${name} `))
  return line === undefined ? undefined : Number(line.slice(name.length + 1))
}

t.test('on its own: app.limits from the settings, its refusals and gauges in the registry it is given', async t => {
  const metrics = new Metrics()
  const app = Fastify()
  await app.register(limitsPlugin, { overload, uploadIdleTimeoutMs: 2500, metrics })
  t.teardown(() => app.close())
  await app.ready()
  const { admission, uploads } = app.limits
  t.same(admission.options, { maxConcurrency: 1, maxConcurrencyPerCaller: 2, queueSize: 1, queueTimeoutMs: 5000, backgroundConcurrency: 0 },
    'the gate gets its four settings, and no background lane unless given one')
  t.same(uploads.options, { maxBytes: 1000, maxBytesPerCaller: 800, retryAfterSeconds: 3 }, 'retry after the idle timeout, rounded up')

  const held = await admission.acquire('alice')
  const waiting = admission.acquire('bob')
  await t.rejects(admission.acquire('carol'), { code: 'OVERLOADED' }, 'the queue of 1 is full')
  const upload = uploads.reserve('alice', 600)
  t.throws(() => uploads.reserve('bob', 600), { code: 'OVERLOADED' }, 'past the process\'s upload bytes')
  t.throws(() => uploads.reserve('alice', 300), { code: 'RATE_LIMITED' }, 'past the caller\'s upload bytes')

  let text = await metrics.registry.metrics()
  t.equal(sample(text, 'agrivision_admission_active'), 1)
  t.equal(sample(text, 'agrivision_admission_queued'), 1)
  t.equal(sample(text, 'agrivision_upload_bytes_in_flight'), 600)
  t.equal(sample(text, 'agrivision_uploads_in_flight'), 1)
  t.equal(sample(text, 'agrivision_refusals_total{reason="queue_full"}'), 1)
  t.equal(sample(text, 'agrivision_refusals_total{reason="upload_bytes_total"}'), 1)
  t.equal(sample(text, 'agrivision_refusals_total{reason="upload_bytes_caller"}'), 1)
  t.equal(sample(text, 'agrivision_admission_wait_seconds_count'), 1, 'the first slot was granted at once')

  held()
  ;(await waiting)()
  upload()
  text = await metrics.registry.metrics()
  t.equal(sample(text, 'agrivision_admission_wait_seconds_count'), 2, 'the waiter\'s wait observed when it got the slot')
  const gauges = ['agrivision_admission_active', 'agrivision_admission_queued', 'agrivision_upload_bytes_in_flight', 'agrivision_uploads_in_flight']
  t.same(gauges.map(name => sample(text, name)), [0, 0, 0, 0], 'everything given back')
})

t.test('in the app: app.limits from the environment, and the same names and help on /metrics', async t => {
  const app = await buildTestApp(t, { env: { VISION_MAX_CONCURRENCY: '3', UPLOAD_IDLE_TIMEOUT_MS: '4000' } })
  t.equal(app.limits.admission.options.maxConcurrency, 3)
  t.equal(app.limits.uploads.options.retryAfterSeconds, 4)
  const text = (await app.inject('/metrics')).payload
  for (const [name, help] of Object.entries(HELP)) t.ok(text.includes(`# HELP ${name} ${help}\n`), name)
  t.match(text, /# TYPE agrivision_admission_wait_seconds histogram\n/)
})
