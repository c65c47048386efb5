// Webhooks' configuration (the schedule and its refusals), Retry-After parsing, signing as the spec says,
// and webhooks with HISTORY=off.
import t from 'tap'
import { createHmac } from 'node:crypto'
import { loadConfig } from '../src/config.ts'
import { parseRetryAfter } from '../src/webhooks/delivery.ts'
import { newSecret, signedHeaders } from '../src/webhooks/signing.ts'
import { buildWebhookApp, gql } from './support/webhooks.ts'

t.test('WEBHOOK_RETRY_SCHEDULE compresses the schedule; nonsense is refused', async t => {
  t.same(loadConfig({ WEBHOOK_RETRY_SCHEDULE: '0, 0.5,2' }).webhooks.retryScheduleMs, [0, 500, 2000])
  for (const value of ['a,b', '-1', '0,999999999', Array(51).fill('1').join(',')]) {
    t.throws(() => loadConfig({ WEBHOOK_RETRY_SCHEDULE: value }), { name: 'ConfigError', message: /WEBHOOK_RETRY_SCHEDULE/ }, value)
  }
  t.equal(loadConfig({ WEBHOOK_TIMEOUT_MS: '500' }).webhooks.leaseMs, 6000, 'the lease outlasts two attempts')
  t.equal(loadConfig({ PUBLIC_BASE_URL: 'https://vision.example.com/some/path' }).webhooks.publicBaseUrl, 'https://vision.example.com')
  t.throws(() => loadConfig({ PUBLIC_BASE_URL: 'ftp://x' }), { name: 'ConfigError' })
  t.throws(() => loadConfig({ WEBHOOK_ALLOW_LOOPBACK: 'maybe' }), { name: 'ConfigError', message: /WEBHOOK_ALLOW_LOOPBACK/ })
  t.throws(() => loadConfig({ WEBHOOK_ALLOW_LOOPBACK: 'true', NODE_ENV: 'production', ALLOW_ANONYMOUS: 'true' }),
    { name: 'ConfigError', message: /WEBHOOK_ALLOW_LOOPBACK=true .* not NODE_ENV=production/ }, 'loopback receivers are for tests, not production')
})

t.test('Retry-After: seconds or an HTTP date, bounded', async t => {
  t.equal(parseRetryAfter('30'), 30_000)
  t.equal(parseRetryAfter(' 2 '), 2000)
  t.equal(parseRetryAfter('999999999'), 24 * 3600 * 1000, 'at most a day')
  const now = Date.parse('2026-12-01T10:00:00Z')
  t.equal(parseRetryAfter('Tue, 01 Dec 2026 10:01:00 GMT', now), 60_000)
  t.equal(parseRetryAfter('Tue, 01 Dec 2026 09:00:00 GMT', now), 0, 'a date past is now')
  t.equal(parseRetryAfter('soon'), null)
  t.equal(parseRetryAfter(undefined), null)
  t.equal(parseRetryAfter(['1', '2']), null)
})

t.test('signatures are the spec\'s: v1, base64 HMAC-SHA256 of id.timestamp.body with the secret\'s bytes', async t => {
  const secret = newSecret()
  const at = new Date('2026-12-01T10:00:00Z')
  const headers = signedHeaders('msg_1', at, '{"a":1}', [secret])
  const expected = createHmac('sha256', Buffer.from(secret.slice('whsec_'.length), 'base64')).update('msg_1.1796119200.{"a":1}').digest('base64')
  t.same(headers, { 'webhook-id': 'msg_1', 'webhook-timestamp': '1796119200', 'webhook-signature': `v1,${expected}` })
  const two = signedHeaders('msg_1', at, '{"a":1}', [secret, newSecret()])
  t.match(two['webhook-signature'], /^v1,\S+ v1,\S+$/)
})

t.test('with HISTORY=off there are no webhooks (nowhere to keep the outbox)', async t => {
  const app = await buildWebhookApp(t, { HISTORY: 'off' })
  t.equal(app.webhooks, null)
  const answer = await gql(app, '{ webhookEndpoints { id } }')
  t.equal(answer.body.errors?.[0]?.extensions.code, 'STORAGE_UNAVAILABLE')
})
